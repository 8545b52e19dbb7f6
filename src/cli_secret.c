/* cli_secret.c: `envproxy -c FILE encrypt-secret`, which prints the enc: form of a password. */
#include "prompt.h"
#include "secret.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define TOO_LONG "the password is too long (at most " STRINGIFY(SECRET_PLAIN_MAX) " bytes)"

static const char usage_text[] =
    "usage: envproxy -c FILE encrypt-secret [--stdin]\n"
    "Prints the enc: form of a backend password, to write as an environment's password.\n"
    "Without --stdin the password is asked for twice on the terminal; with it, the first\n"
    "line of standard input is the password. It is never taken from the command line.\n"
    "The key (32 bytes: 64 hex digits or base64) comes from the environment variable\n"
    "ENVPROXY_SECRET_KEY or, when that is not set, from the file named by secret_key_file\n"
    "in the configuration, which only its owner may read. Make a key file with:\n"
    "  (umask 077; openssl rand -hex 32 > /etc/envproxy/secret.key)\n";

int cli_encrypt_secret(const char *key_file, int argc, char **argv)
{
    bool from_stdin = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "--stdin") == 0)
            from_stdin = true;
        else if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strncmp(w, "--password", 10) == 0 || strncmp(w, "-p", 2) == 0)
            /* Refuse without repeating the word: it may hold the password. */
            return cli_usage_error(usage_text, "the password is read from the terminal or with --stdin, never "
                               "from the command line");
        else if (w[0] == '-')
            return cli_usage_error(usage_text, "unknown option '%s'", w);
        else
            return cli_usage_error(usage_text, "encrypt-secret takes no arguments (the password is read from "
                               "the terminal or with --stdin)");
    }

    /* The key first, so that nobody types a password only to learn it cannot be used. */
    uint8_t key[SECRET_KEY_LEN];
    char err[512];
    if (secret_load_key(key_file, key, err, sizeof err) != 0)
        return cli_fail(err);

    char pw[SECRET_PLAIN_MAX + 2];
    const char *why = NULL;
    long n = prompt_password(from_stdin, "Backend password: ", pw, sizeof pw, &why);
    if (n < 0) {
        OPENSSL_cleanse(key, sizeof key);
        return cli_fail(why ? why : "cannot read the password");
    }
    if (n == 0) {
        OPENSSL_cleanse(key, sizeof key);
        return cli_fail("the password is empty; an empty password needs no encryption");
    }

    char *enc = NULL;
    int rc = secret_encrypt(key, pw, (size_t)n, &enc, err, sizeof err);
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0)
        return cli_fail(err);
    printf("%s\n", enc);
    free(enc);
    if (fflush(stdout) != 0)
        return cli_fail("cannot write to standard output");
    return 0;
}
