/* test_throttle.c: the login throttle's counting: per address over all names, per name over
 * all addresses, and what a success clears. */
#include "envproxy.h"
#include "unit.h"

#include <string.h>

static config cfg(int max_failures)
{
    config c;
    memset(&c, 0, sizeof c);
    c.throttle_max_failures = max_failures;
    c.throttle_window_ms = 60000;
    c.throttle_block_ms = 60000;
    return c;
}

/* A correct login of another account does not excuse an address's failures. */
static void test_success_of_another_account(void)
{
    config c = cfg(3);
    throttle_failure(&c, "10.0.0.1", "alice");
    throttle_failure(&c, "10.0.0.1", "alice");
    CHECK_INT(throttle_blocked(&c, "10.0.0.1", "bob"), THROTTLE_OK);
    throttle_success("10.0.0.1", "bob");
    throttle_failure(&c, "10.0.0.1", "alice");
    CHECK_INT(throttle_blocked(&c, "10.0.0.1", "bob"), THROTTLE_HOST);
    CHECK_INT(throttle_blocked(&c, "10.0.0.1", "alice"), THROTTLE_HOST);
    CHECK_INT(throttle_blocked(&c, "10.0.0.2", "bob"), THROTTLE_OK);
}

/* A success clears that account's failures from that address only. */
static void test_success_clears_its_own(void)
{
    config c = cfg(3);
    throttle_failure(&c, "10.0.1.1", "carol");
    throttle_failure(&c, "10.0.1.1", "carol");
    throttle_success("10.0.1.1", "carol");
    throttle_failure(&c, "10.0.1.1", "carol");
    throttle_failure(&c, "10.0.1.1", "carol");
    CHECK_INT(throttle_blocked(&c, "10.0.1.1", "carol"), THROTTLE_OK);
    throttle_failure(&c, "10.0.1.1", "carol");
    CHECK_INT(throttle_blocked(&c, "10.0.1.1", "carol"), THROTTLE_HOST);
}

/* Failures against one name from many addresses block that name, not the others. */
static void test_account_across_addresses(void)
{
    config c = cfg(3);
    throttle_failure(&c, "10.0.2.1", "dave");
    throttle_failure(&c, "10.0.2.2", "dave");
    CHECK_INT(throttle_blocked(&c, "10.0.2.9", "dave"), THROTTLE_OK);
    throttle_failure(&c, "10.0.2.3", "dave");
    CHECK_INT(throttle_blocked(&c, "10.0.2.9", "dave"), THROTTLE_ACCOUNT);
    CHECK_INT(throttle_blocked(&c, "10.0.2.9", "erin"), THROTTLE_OK);
    CHECK_INT(throttle_blocked(&c, "10.0.2.1", "erin"), THROTTLE_OK);
}

/* max_failures 0 turns it off. */
static void test_off(void)
{
    config c = cfg(0);
    for (int i = 0; i < 50; i++)
        throttle_failure(&c, "10.0.3.1", "frank");
    CHECK_INT(throttle_blocked(&c, "10.0.3.1", "frank"), THROTTLE_OK);
}

/* The table is bounded: many addresses recycle entries instead of growing. */
static void test_bounded(void)
{
    config c = cfg(1000);
    char host[48];
    for (int i = 0; i < 20000; i++) {
        snprintf(host, sizeof host, "10.%d.%d.%d", 4 + i / 65536, (i / 256) % 256, i % 256);
        throttle_failure(&c, host, "grace");
    }
    CHECK_INT(throttle_blocked(&c, "10.9.9.9", "heidi"), THROTTLE_OK);
}

/* A block in force survives a flood of failures that fills the table. */
static void test_block_survives_a_flood(void)
{
    config c = cfg(2);
    throttle_failure(&c, "10.1.0.1", "ivan");
    throttle_failure(&c, "10.1.0.1", "ivan");
    CHECK_INT(throttle_blocked(&c, "10.1.0.1", "judy"), THROTTLE_HOST);
    char user[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(user, sizeof user, "u%d", i);
        throttle_failure(&c, "10.1.0.2", user);
    }
    CHECK_INT(throttle_blocked(&c, "10.1.0.1", "judy"), THROTTLE_HOST);
}

int main(void)
{
    test_success_of_another_account();
    test_success_clears_its_own();
    test_account_across_addresses();
    test_off();
    test_bounded();
    test_block_survives_a_flood();
    return unit_report("throttle");
}
