#!/usr/bin/env bash
# Backs up lumaweb's database and media into BACKUP_DIR (default /var/backups/lumaweb), keeping
# KEEP_DAYS days (default 14). An example: run it daily (a systemd timer, cron) as the app's user,
# with the app's environment, and copy BACKUP_DIR off the machine:
#   set -a; . /etc/lumaweb/lumaweb.env; set +a; /srv/lumaweb/deploy/backup.sh
# * PostgreSQL: pg_dump's custom format (restore: pg_restore --clean --no-owner -d "$DATABASE_URL" FILE).
# * SQLite: its online backup, consistent while the app keeps writing (restore: stop both units,
#   copy the file over LUMAWEB_VAR_DIR/lumaweb.sqlite3 and remove its -wal and -shm files).
# * Media on the local disk: a dated snapshot per run; files unchanged since the last one are hard
#   links to it, so each run costs only what is new (restore: rsync -a SNAPSHOT/ "$MEDIA_ROOT"/).
#   Media in S3 are the bucket's to keep: turn on its versioning (and replication) instead.
# Secrets (the database URL's password) are never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKUP_DIR=${BACKUP_DIR:-/var/backups/lumaweb}
KEEP_DAYS=${KEEP_DAYS:-14}
VAR_DIR=${LUMAWEB_VAR_DIR:-$PWD/var}
MEDIA=${MEDIA_ROOT:-$VAR_DIR/media}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
umask 077
mkdir -p "$BACKUP_DIR"

# --- The database ---------------------------------------------------------------------------------
case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*)
    pg_dump --format=custom --no-owner --file="$BACKUP_DIR/db-$STAMP.dump" "$DATABASE_URL"
    echo "backup: database -> $BACKUP_DIR/db-$STAMP.dump"
    ;;
  ""|sqlite://*)
    DB=$VAR_DIR/lumaweb.sqlite3
    [ -z "${DATABASE_URL:-}" ] || DB=${DATABASE_URL#sqlite://}
    DB=${DB#/}; DB=/${DB#/}  # sqlite:////abs/path -> /abs/path
    .venv/bin/python - "$DB" "$BACKUP_DIR/db-$STAMP.sqlite3" <<'PY'
import sqlite3, sys
source, target = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True), sqlite3.connect(sys.argv[2])
source.backup(target)
target.close()
PY
    echo "backup: database -> $BACKUP_DIR/db-$STAMP.sqlite3"
    ;;
  *)
    echo "backup: no recipe for this DATABASE_URL's engine; back the database up with its own tools." >&2
    exit 1
    ;;
esac

# --- Media ------------------------------------------------------------------------------------------
if [ -n "${AWS_STORAGE_BUCKET_NAME:-}" ]; then
  echo "backup: media are in the bucket $AWS_STORAGE_BUCKET_NAME: keep them with its versioning, not here."
elif [ -d "$MEDIA" ]; then
  previous=$(ls -1d "$BACKUP_DIR"/media-* 2>/dev/null | tail -n 1 || true)
  rsync -a --delete ${previous:+--link-dest="$previous"} "$MEDIA"/ "$BACKUP_DIR/media-$STAMP"/
  touch "$BACKUP_DIR/media-$STAMP"  # its age is the snapshot's, not the media directory's
  echo "backup: media -> $BACKUP_DIR/media-$STAMP"
fi

# --- What is older than KEEP_DAYS goes --------------------------------------------------------------
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -name 'db-*' -mtime +"$KEEP_DAYS" -delete
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -name 'media-*' -type d -mtime +"$KEEP_DAYS" -exec rm -rf {} +
