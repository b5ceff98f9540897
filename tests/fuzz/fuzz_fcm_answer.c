/*
 * An FCM HTTP v1 answer (status, headers, JSON body; fuzz_answer.h has the
 * format): fcm_answer_classify() must give a verdict the delivery layer acts on,
 * a Retry-After that is never negative and only for a retry, and a reason fit for
 * logs and the feedback webhook's JSON; 1 only for a 401.
 */
#include "autoconf.h"

#include "fcm.h"
#include "fuzz_answer.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h2_response response;
	struct provider_result result;
	int rc;

	if (fuzz_answer_read(data, size, &response) != 0)
		return 0;
	memset(&result, 0x5a, sizeof result);
	rc = fcm_answer_classify(&response, &result);
	if (rc != 0 && rc != 1)
		fuzz_fail("returned %d", rc);
	if (rc == 1) {
		/* The caller settles a refused access token; the reason is ready. */
		if (response.status != 401)
			fuzz_fail("an access token problem with status %d", response.status);
		result.verdict = PROVIDER_RETRY;
	}
	if (result.status != response.status)
		fuzz_fail("status %d, answer %d", result.status, response.status);
	if (response.status >= 200 && response.status < 300 && result.verdict != PROVIDER_SENT)
		fuzz_fail("a %d is not sent", response.status);
	fuzz_answer_check(&result, INT64_MAX);
	return 0;
}
