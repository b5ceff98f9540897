/*
 * Base64 and JWTs as they come from outside (Ably signatures, tokens the mocks
 * verify): each decoder takes exactly one encoding per byte string, so what it
 * accepts must encode back to the same text; jwt_verify must refuse or accept
 * without crashing or leaking, give its JSON only on success, and keep its order of
 * checks (a key of the wrong algorithm is refused before the token is read).
 */
#include "autoconf.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "fuzz.h"
#include "jwt.h"

/* The fake APNs key of certs.example, so that seeds can carry valid signatures. */
static const char es256_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfYkvUTgByCxiBThu\n"
    "7ygr8yI3MG57A1pS4KAJ05W6A62hRANCAAR1fPOkLKMt224HiyCORPAinEQGkg1e\n"
    "5A7DFkxCBsGoSwlwXKgS1fxoI+cTBA8gbq4k6oy/GqU2ccE/EucTaee7\n"
    "-----END PRIVATE KEY-----\n";

static struct jwt_key *es256, *rs256;

/* A new RSA key of 2048 bits, loaded for RS256. */
static struct jwt_key *
rs256_key_new(void)
{
	struct jwt_key *key;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, err[256];
	long len;

	if (pkey == NULL || bio == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
		abort();
	len = BIO_get_mem_data(bio, &pem);
	if (jwt_key_load_pem(pem, (size_t)len, "generated", JWT_ALG_RS256, &key, err,
	    sizeof err) != JWT_OK)
		fuzz_fail("RS256 key: %s", err);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return key;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	fuzz_setup();
	if (jwt_key_load_pem(es256_pem, sizeof es256_pem - 1, "fake", JWT_ALG_ES256, &es256,
	    err, sizeof err) != JWT_OK)
		fuzz_fail("ES256 key: %s", err);
	rs256 = rs256_key_new();
	return 0;
}

/* Decode with one alphabet; if accepted, encoding gives the text back. */
static void
check_base64(const char *text, size_t len, int url)
{
	unsigned char *out = (unsigned char *)"unchanged";
	size_t outlen = 12345;
	char *again;
	size_t unpadded = len;
	int rc;

	rc = url ? base64url_decode(text, len, &out, &outlen) :
	    base64_decode(text, len, &out, &outlen);
	if (rc != 0) {
		if (rc != -1 || out != NULL || outlen != 0)
			fuzz_fail("a refused decode returned %d, %p, %zu", rc, (void *)out,
			    outlen);
		return;
	}
	if (out[outlen] != '\0')
		fuzz_fail("the decoded bytes are not NUL-terminated");
	again = url ? base64url_encode(out, outlen) : base64_encode(out, outlen);
	/* base64url takes the padded form too, and writes the unpadded one. */
	while (url && unpadded > 0 && text[unpadded - 1] == '=')
		unpadded--;
	if (strlen(again) != unpadded || memcmp(again, text, unpadded) != 0)
		fuzz_fail("%s decode accepted '%.*s', which encodes as '%s'",
		    url ? "base64url" : "base64", (int)len, text, again);
	free(again);
	free(out);
}

/* Verify a token with one key for one algorithm. */
static void
check_verify(const char *token, const struct jwt_key *key, enum jwt_alg alg)
{
	json_t *header = (json_t *)1, *claims = (json_t *)1;
	int rc = jwt_verify(token, key, alg, &header, &claims);

	if (jwt_strerror(rc) == NULL)
		fuzz_fail("no name for %d", rc);
	if (rc != JWT_OK) {
		if (header != NULL || claims != NULL)
			fuzz_fail("a refused token gave JSON (%s)", jwt_strerror(rc));
		if (rc != JWT_EKEYTYPE && rc != JWT_EMALFORMED && rc != JWT_EALG &&
		    rc != JWT_EDERSIG && rc != JWT_ESIGNATURE && rc != JWT_EINVAL)
			fuzz_fail("jwt_verify returned %d", rc);
		return;
	}
	if (!json_is_object(header) || !json_is_object(claims))
		fuzz_fail("a verified token without header or claims");
	if (strcmp(json_string_value(json_object_get(header, "alg")), jwt_alg_name(alg)) != 0)
		fuzz_fail("verified with the wrong alg");
	fuzz_check_json("header", header);
	fuzz_check_json("claims", claims);
	json_decref(header);
	json_decref(claims);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size > 0 ? size : 1), *token;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	check_base64(text, size, 0);
	check_base64(text, size, 1);
	free(text);

	token = fuzz_strndup(data, size);
	check_verify(token, es256, JWT_ALG_ES256);
	check_verify(token, rs256, JWT_ALG_RS256);
	/* A key for the other algorithm is refused first, whatever the token. */
	if (jwt_verify(token, es256, JWT_ALG_RS256, NULL, NULL) != JWT_EKEYTYPE)
		fuzz_fail("an ES256 key verified for RS256");
	free(token);
	return 0;
}
