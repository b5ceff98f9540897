/*
 * The APNs provider's credentials (apns.c's part, in a file of its own): reading the
 * .p8 key and the TLS client identity of an [apns "APP_ID"] section, the shape of
 * its key and team ids, the client certificate's validity, and the offline check of
 * them all (provider_ops.check_offline: pushrelayd -t, and the start-up).
 *
 * Called by apns.c on the event loop at start-up and on reload, and by daemon.c's
 * credential check before the providers start. Errors name the section and the file,
 * never the key.
 */
#ifndef PUSHRELAY_APNS_CREDENTIALS_H
#define PUSHRELAY_APNS_CREDENTIALS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"
#include "jwt.h"
#include "provider.h"

/* The .p8 key of a token-auth section, and the SHA-256 of its file; 0 or -1 with err. */
int apns_key_load(const struct config_apns_app *c, struct jwt_key **key,
    unsigned char digest[32], char *err, size_t errlen);
/* The TLS context of a section: its CA file, and its client certificate if any. */
int apns_tls_load(const struct config_apns_app *c, SSL_CTX **out, char *err, size_t errlen);
/* Token auth: key_file, key_id and team_id set, the ids of Apple's shape. */
int apns_identity_check(const struct config_apns_app *c, char *err, size_t errlen);
/* Certificate auth: the client certificate is valid now (warned within 30 days). */
int apns_certificate_check(const struct config_apns_app *c, SSL_CTX *ctx, char *err,
    size_t errlen);
/* Every section's credentials, loaded and dropped; each problem reported. */
size_t apns_check_offline(const struct config *config, provider_problem_fn *problem,
    void *arg);

#endif
