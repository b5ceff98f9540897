/* What every provider shares: the names of the verdicts. */
#include "autoconf.h"

#include "provider.h"

const char *
provider_verdict_name(enum provider_verdict verdict)
{
	switch (verdict) {
	case PROVIDER_SENT: return "sent";
	case PROVIDER_RETRY: return "retry";
	case PROVIDER_TOKEN_GONE: return "token_gone";
	case PROVIDER_REJECTED: return "rejected";
	case PROVIDER_CONFIG: return "config";
	}
	return "unknown";
}
