/*
 * The APNs provider (provider_apns_ops in provider.h): one [apns "APP_ID"] section per
 * iOS app, an HTTP/2 pool per app and environment, ES256 provider tokens or a TLS
 * client certificate. What follows is the part of it that tests use directly.
 *
 * daemon.c creates it; the delivery layer calls it through provider.h. Everything
 * runs on the event loop; results come back through the completion callback of send().
 */
#ifndef PUSHRELAY_APNS_H
#define PUSHRELAY_APNS_H

#include "h2_client.h"
#include "provider.h"

/*
 * What an APNs answer means for a delivery, from its HTTP status and the "reason" of
 * its JSON body (NULL when there was none): a known reason decides, else the status
 * (200 sent, 410 token gone, 429 and 5xx retry, other 4xx rejected).
 */
enum provider_verdict apns_verdict(int status, const char *reason);

/*
 * Read an answer that is not 200 into result (zeroed by the caller, status set):
 * the verdict, the reason (the body's, else "HTTP <status>"), Retry-After for a
 * retry and the body's "timestamp" for a 410. Nothing else: no log, no counter.
 */
void apns_answer_classify(const struct h2_response *response, struct provider_result *result);

#endif
