#!/bin/sh
# Generate throw-away test credentials with the openssl CLI into DIR:
#   ca.pem ca.key            a CA (P-256) trusted by the tests
#   server.pem server.key    a TLS server certificate for 127.0.0.1, ::1 and localhost, signed by ca
#   apns.p8 apns.pub.pem     an APNs token-auth signing key (PKCS#8 P-256) and its public key
#   fcm-sa.key fcm-sa.pub.pem  an FCM service-account key (PKCS#8 RSA 2048) and its public key
# Nothing here is a secret worth keeping: the files are made at test time and deleted with DIR.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

ossl() {
	openssl "$@" 2>/dev/null || { echo "gen-certs.sh: openssl $1 failed" >&2; exit 1; }
}

# The CA.
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
ossl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=pushrelay test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out ca.pem

# The server certificate, with the names the tests connect to.
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
ossl req -new -key server.key -subj "/CN=localhost" -out server.csr
cat > server.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EOF
ossl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 2 \
	-extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl

# The APNs token-auth key: a .p8 is PKCS#8 P-256.
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out apns.p8
ossl pkey -in apns.p8 -pubout -out apns.pub.pem

# The FCM service-account key: PKCS#8 RSA, as in a service-account JSON file.
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out fcm-sa.key
ossl pkey -in fcm-sa.key -pubout -out fcm-sa.pub.pem

chmod 644 ca.pem server.pem apns.pub.pem fcm-sa.pub.pem
