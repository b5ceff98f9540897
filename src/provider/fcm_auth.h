/*
 * An FCM project's credentials: its service account, and the OAuth access tokens
 * fcm.c puts in the authorization header of its sends.
 *
 * Access tokens come from the Google OAuth token endpoint of the service account: an
 * RS256 assertion signed with the account's key is exchanged (through httpc.c, off the
 * hot path) for a bearer token that lives about an hour. A token is renewed in the
 * background when 80% of its lifetime has passed or 5 minutes before it expires,
 * whichever comes first (but never before half of it has passed), and sends keep
 * using the current one meanwhile. A failed exchange is logged and retried after 1 s,
 * doubling up to 60 s. Each new token is announced through the ready callback given
 * to fcm_auth_new(), so that the sends waiting for one can go.
 *
 * Everything here runs on the event loop's thread.
 */
#ifndef PUSHRELAY_FCM_AUTH_H
#define PUSHRELAY_FCM_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct httpc;
struct jwt_key;

/* What a service-account file says. */
struct fcm_credentials {
	char *project_id;
	char *private_key_id;		/* the assertion's kid; NULL when absent */
	char *client_email;
	char *token_uri;
	struct jwt_key *key;
	unsigned char key_digest[32];	/* SHA-256 of the PEM, to notice a new key */
};

/*
 * Load a service-account JSON file for the [fcm "app"] section: 0, or -1 with err set.
 * Errors name the app and the file, never the key.
 */
int fcm_credentials_load(const char *app, const char *path, struct fcm_credentials *cred,
    char *err, size_t errlen);
/* Free what a load filled in (a zeroed struct is fine). */
void fcm_credentials_free(struct fcm_credentials *cred);

/* An access token, shared by the requests that carry it. */
struct fcm_token {
	unsigned refs;
	char *authorization;		/* "Bearer ya29..." */
	int after_unauthorized;		/* fetched because the last token got a 401 */
	int proven;			/* FCM accepted a request carrying it */
};

/* Take a reference to a token for a request in flight. */
void fcm_token_ref(struct fcm_token *token);
/* Drop a reference; the last one wipes the bearer token. NULL is fine. */
void fcm_token_unref(struct fcm_token *token);

struct fcm_auth;

/* A new access token is ready: sends that waited for one can go now. */
typedef void fcm_auth_ready_fn(void *arg);

/*
 * One project's tokens, from the service account at path, fetched through httpc
 * (with the section's CA file and proxy, both may be NULL; the strings are copied).
 * NULL with err set if the service account does not load. No exchange starts yet:
 * call fcm_auth_start().
 */
struct fcm_auth *fcm_auth_new(struct event_base *base, struct httpc *httpc,
    const char *app_id, const char *path, const char *ca_file, const char *proxy,
    fcm_auth_ready_fn *ready, void *arg, char *err, size_t errlen);
/* Cancel the exchange and the timer, wipe the token, free. NULL is fine. */
void fcm_auth_free(struct fcm_auth *auth);

/* The credentials in use (valid until fcm_auth_adopt() takes new ones). */
const struct fcm_credentials *fcm_auth_credentials(const struct fcm_auth *auth);
/*
 * Fetch a token now, abandoning an exchange in flight and a scheduled renewal; the
 * result comes later (ready), or a failure is logged and retried.
 */
void fcm_auth_start(struct fcm_auth *auth);
/* A send waits for a token: start an exchange unless one is running or scheduled. */
void fcm_auth_want(struct fcm_auth *auth);
/*
 * The token sends can use now (not referenced for the caller), or NULL: none yet,
 * dropped after a 401, or expired before it could be renewed (logged, then dropped).
 */
struct fcm_token *fcm_auth_token(struct fcm_auth *auth);
/* Is token the project's current one (not renewed or dropped since)? */
int fcm_auth_is_current(const struct fcm_auth *auth, const struct fcm_token *token);
/*
 * FCM refused the current token (a 401 without an FcmError): drop it so that new
 * sends wait, mark the next one as fetched after a refusal, and fetch it.
 */
void fcm_auth_refused(struct fcm_auth *auth);
/*
 * Adopt credentials loaded for a reload (taken over, in any case): 1 if they differ
 * in anything a token depends on (the token is dropped and a new one fetched), 0 if
 * they are the same (nothing changes).
 */
int fcm_auth_adopt(struct fcm_auth *auth, struct fcm_credentials *cred);
/* Why the last exchange failed; "" once one has succeeded since. */
const char *fcm_auth_error(const struct fcm_auth *auth);
/* Tokens obtained, and exchanges that failed, since fcm_auth_new(). */
void fcm_auth_counts(const struct fcm_auth *auth, uint64_t *renewals, uint64_t *failures);

#endif
