#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS checks (interop.sh, browser.sh) with openssl:
#   DIR/ca.pem              a test CA (EC P-256, valid 2 days)
#   DIR/cert.pem, key.pem   a server certificate it signs, for 127.0.0.1 and localhost
#   DIR/other-ca.pem        another CA that signed nothing here (clients trusting it must refuse)
# Usage: bash ci/test-cert.sh DIR   (DIR is emptied first; the CA keys stay in DIR/private).
set -euo pipefail
dir="${1:?usage: test-cert.sh DIR}"
rm -rf "$dir"
mkdir -p "$dir/private"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")

openssl req -x509 "${ec[@]}" -keyout private/ca.key -out ca.pem -days 2 \
  -subj "/CN=ws CI test CA" "${ca_ext[@]}" 2>/dev/null
openssl req -x509 "${ec[@]}" -keyout private/other-ca.key -out other-ca.pem -days 2 \
  -subj "/CN=ws CI other CA" "${ca_ext[@]}" 2>/dev/null

openssl req "${ec[@]}" -keyout key.pem -out private/server.csr -subj "/CN=localhost" 2>/dev/null
cat > private/server.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
openssl x509 -req -in private/server.csr -CA ca.pem -CAkey private/ca.key -CAcreateserial \
  -CAserial private/ca.srl -days 2 -extfile private/server.ext -out cert.pem 2>/dev/null
openssl verify -CAfile ca.pem cert.pem >/dev/null
