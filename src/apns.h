/*
 * The APNs provider (provider_apns_ops in provider.h): one [apns "APP_ID"] section per
 * iOS app, an HTTP/2 pool per app and environment, ES256 provider tokens or a TLS
 * client certificate. What follows is the part of it that tests use directly.
 */
#ifndef PUSHRELAY_APNS_H
#define PUSHRELAY_APNS_H

#include "provider.h"

/*
 * What an APNs answer means for a delivery, from its HTTP status and the "reason" of
 * its JSON body (NULL when there was none): a known reason decides, else the status
 * (200 sent, 410 token gone, 429 and 5xx retry, other 4xx rejected).
 */
enum provider_verdict apns_verdict(int status, const char *reason);

#endif
