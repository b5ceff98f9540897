/*
 * An APNs answer that is not 200 (status, headers, JSON body; fuzz_answer.h has
 * the format): apns_answer_classify() must give a verdict the delivery layer acts
 * on, Retry-After within its cap and only for a retry, the 410 timestamp only for a
 * 410, and a reason fit for logs and the feedback webhook's JSON. It must agree with
 * apns_verdict() on the body's reason.
 */
#include "autoconf.h"

#include "apns.h"
#include "fuzz_answer.h"

#define APNS_RETRY_AFTER_MAX_MS (24 * 3600 * 1000LL)

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
	json_t *root;
	const char *reason;

	if (fuzz_answer_read(data, size, &response) != 0 || response.status == 200)
		return 0;
	memset(&result, 0, sizeof result);
	result.status = response.status;
	apns_answer_classify(&response, &result);
	fuzz_answer_check(&result, APNS_RETRY_AFTER_MAX_MS);
	if (result.token_invalid_since != 0 &&
	    (response.status != 410 || result.verdict != PROVIDER_TOKEN_GONE))
		fuzz_fail("token_invalid_since for a %d", response.status);

	/* The verdict is the table's for the body's reason. */
	root = json_loadb((const char *)response.body, response.body_len, 0, NULL);
	reason = json_string_value(json_object_get(root, "reason"));
	if (result.verdict != apns_verdict(response.status, reason))
		fuzz_fail("verdict %s, apns_verdict says %s", provider_verdict_name(result.verdict),
		    provider_verdict_name(apns_verdict(response.status, reason)));
	json_decref(root);
	return 0;
}
