/*
 * The FCM HTTP v1 provider (provider_fcm_ops in provider.h): one [fcm "APP_ID"]
 * section per Firebase project. What follows is the part of it that tests use
 * directly.
 *
 * daemon.c creates it; the delivery layer calls it through provider.h. Everything
 * runs on the event loop; results come back through the completion callback of send().
 */
#ifndef PUSHRELAY_FCM_H
#define PUSHRELAY_FCM_H

#include "h2_client.h"
#include "provider.h"

/*
 * Read an answer into result (zeroed here): the verdict from the status, the
 * FcmError errorCode and the Google status of the JSON body, the reason (errorCode,
 * else status, else "HTTP <status>") and Retry-After. Returns 1 for a 401 without
 * an FcmError (our access token was refused: the verdict is for the caller to
 * settle), 0 otherwise. Nothing else: no log, no counter.
 */
int fcm_answer_classify(const struct h2_response *response, struct provider_result *result);

#endif
