#!/usr/bin/env bash
# Writes deploy/compose/.env (read by docker compose) with random secrets for
# Kiln, once: signing key, captcha salt, admin key. Created 0600.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f .env ] && grep -q '^KILN_SIGNING_KEYS=' .env; then
  echo "deploy/compose/.env already holds secrets"
  exit 0
fi
hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
(umask 077 && cat >.env) <<EOT
KILN_SIGNING_KEYS=$(hex)
KILN_CAPTCHA_SALT=$(hex)
KILN_ADMIN_KEYS=$(hex)
EOT
echo "wrote deploy/compose/.env (admin key: sed -n 's/^KILN_ADMIN_KEYS=//p' deploy/compose/.env)"
