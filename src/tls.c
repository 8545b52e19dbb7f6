/* tls.c: the client-side TLS context; a self-signed pair is made when none is configured. */
#include "envproxy.h"
#include "log.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>

static void openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[160] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

/* A P-256 key and a certificate for CN=envproxy, valid for ten years, made in memory. */
static int self_signed(SSL_CTX *ctx, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    int rc = -1;
    if (!key || !crt) {
        openssl_error(err, errlen, "cannot generate a key");
        goto out;
    }
    X509_set_version(crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), (long)time(NULL));
    X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(crt), 10L * 365 * 24 * 3600);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"envproxy", -1,
                               -1, 0);
    X509_set_issuer_name(crt, name);
    if (!X509_sign(crt, key, EVP_sha256())) {
        openssl_error(err, errlen, "cannot sign the certificate");
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, crt) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        openssl_error(err, errlen, "cannot use the generated certificate");
        goto out;
    }
    rc = 0;
out:
    X509_free(crt);
    EVP_PKEY_free(key);
    return rc;
}

SSL_CTX *tls_server_ctx(const config *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_error(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (c->tls_cert && c->tls_key) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
            openssl_error(err, errlen, c->tls_cert);
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            openssl_error(err, errlen, c->tls_key);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        if (self_signed(ctx, err, errlen)) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        log_info("TLS: no certificate configured; using a self-signed one made at start-up");
    }
    return ctx;
}
