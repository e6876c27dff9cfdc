#!/usr/bin/env bash
# Make a local certificate authority, a server certificate (for localhost, 127.0.0.1 and the
# chart's service names) and a client certificate for mTLS. For development and tests only:
# production clusters should use cert-manager or their own CA.
#
# Usage: scripts/make_certs.sh [OUT_DIR]   (default: var/certs)
set -euo pipefail
out=${1:-var/certs}
days=${FERLITE_CERT_DAYS:-30}
mkdir -p "$out"
cd "$out"
# the chart's Service names too, headless `-pods` ones included (face detection dials those)
san="DNS:localhost,IP:127.0.0.1,DNS:ferlite-facedetect,DNS:ferlite-classifier,DNS:ferlite-aggregator,DNS:ferlite-classifier-pods,DNS:ferlite-aggregator-pods,DNS:ferlite-triton"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" \
  -subj "/CN=ferlite local CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" -subj "/CN=ferlite-$who" 2>/dev/null
  if [ "$who" = server ]; then ext="subjectAltName=$san"; else ext="extendedKeyUsage=clientAuth"; fi
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" \
    -days "$days" -extfile <(echo "$ext") 2>/dev/null
  rm -f "$who.csr"
done
chmod 600 ./*.key
echo "certificates written to $(pwd): ca.pem, server.pem/server.key, client.pem/client.key"
