#!/usr/bin/env bash
# Start a PostgreSQL server for AiiDA's production storage (core.psql_dos) and make a role that may create
# databases. Debian 12 (PostgreSQL 15), as root; idempotent. The test suite then makes a fresh database of its
# own with AIIDA_TEST_STORAGE=core.psql_dos (see tests/conftest.py); variables: AIIDA_TEST_PG_USER/PASSWORD.
set -euo pipefail
USER_NAME=${AIIDA_TEST_PG_USER:-aiida_test}
PASSWORD=${AIIDA_TEST_PG_PASSWORD:-aiida_test}
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
  pg_createcluster "$VERSION" main >/dev/null
fi
pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online || pg_ctlcluster "$VERSION" main start
timeout 60 bash -c "until runuser -u postgres -- pg_isready -q; do sleep 1; done"
runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'" | grep -q 1 \
  || runuser -u postgres -- psql -qc "CREATE ROLE $USER_NAME LOGIN CREATEDB PASSWORD '$PASSWORD'"
echo "PostgreSQL $VERSION running on localhost:5432; role $USER_NAME may create databases"
