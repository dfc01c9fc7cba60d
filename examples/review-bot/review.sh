#!/usr/bin/env bash
# Review a pull request's changes with rlm-mcp and post the result as a PR comment.
# Needs: rlm-mcp on PATH, RLM_MODEL (+ OPENAI_API_KEY or RLM_BASE_URL/RLM_API_KEY),
# and, to comment, the gh CLI with GH_TOKEN and PR_NUMBER set (as in the workflow).
# Exit status: rlm-mcp review's. Only 0 (no error-severity findings) and 1 (at least
# one) are verdicts; 2 (usage), 3 (failed: bad key, provider down, git) and 4 (incomplete:
# the model's answer was no verdict, or a limit stopped it) post "review failed", never
# "No findings", and fail the job like 1 does.
set -uo pipefail

base="${REVIEW_BASE:-origin/main}"
out="$(mktemp)"
err="$(mktemp)"
comment="$(mktemp)"
trap 'rm -f "$out" "$err" "$comment"' EXIT
rlm-mcp review --base "$base" --json >"$out" 2>"$err"
status=$?
cat "$err" >&2

python3 - "$out" "$status" "$err" >"$comment" <<'PY'
import json, sys

out, status, err = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with open(out) as fh:
        data = json.load(fh)
except (OSError, ValueError):
    data = {}
if not isinstance(data, dict):
    data = {}
findings = data.get("findings") or []
verdict = data.get("verdict")
ok = status in (0, 1) and verdict in ("no_findings", "findings")
lines = ["### rlm-mcp review", ""]
if ok:
    if not findings:
        lines.append("No findings.")
else:
    with open(err, errors="replace") as fh:
        said = [l.split("error: ", 1)[1] for l in fh.read().splitlines() if l.startswith("rlm-mcp: ") and "error: " in l]
    why = data.get("problem") or (said[-1] if said else "") or "no verdict; see the job log"
    lines.append(f"**rlm-mcp review failed** (exit {status}): {why}")
    if findings:
        lines += ["", "Findings read before it stopped (the review is incomplete):"]
for f in findings:
    lines.append(f"- **{f['severity']}** `{f['path']}:{f['line']}`: {f['message']}")
usage = data.get("usage") or {}
if usage:
    lines += ["", f"<sub>{usage.get('calls', 0)} LLM calls, ${usage.get('cost_usd', '0')}; status {data.get('status')}</sub>"]
print("\n".join(lines))
sys.exit(0 if ok else 3)
PY
judged=$?
if [ ! -s "$comment" ]; then
  printf '### rlm-mcp review\n\n**rlm-mcp review failed** (exit %s): see the job log\n' "$status" >"$comment"
fi
if [ "$judged" -ne 0 ] && [ "$status" -eq 0 ]; then
  status=3
fi
cat "$comment"
if [ -n "${PR_NUMBER:-}" ] && command -v gh >/dev/null; then
  gh pr comment "$PR_NUMBER" --body-file "$comment" || echo "review.sh: could not post the PR comment" >&2
fi
exit "$status"
