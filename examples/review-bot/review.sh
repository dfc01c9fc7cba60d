#!/usr/bin/env bash
# Review a pull request's changes with rlm-mcp and post the findings as a PR comment.
# Needs: rlm-mcp on PATH, RLM_MODEL (+ OPENAI_API_KEY or RLM_BASE_URL/RLM_API_KEY),
# and, to comment, the gh CLI with GH_TOKEN and PR_NUMBER set (as in the workflow).
# Exit status: rlm-mcp review's (0 clean, 1 error-severity findings, 2 limit/usage, 3 failed).
set -uo pipefail

base="${REVIEW_BASE:-origin/main}"
out="$(mktemp)"
rlm-mcp review --base "$base" --json >"$out"
status=$?
if [ "$status" -ge 2 ] && [ ! -s "$out" ]; then
  echo "rlm-mcp review failed (exit $status)" >&2
  exit "$status"
fi

body="$(python3 - "$out" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
findings = data.get("findings", [])
lines = ["### rlm-mcp review", ""]
if not findings:
    lines.append("No findings.")
for f in findings:
    lines.append(f"- **{f['severity']}** `{f['path']}:{f['line']}`: {f['message']}")
usage = data.get("usage") or {}
if usage:
    lines += ["", f"<sub>{usage.get('calls', 0)} LLM calls, ${usage.get('cost_usd', '0')}; status {data.get('status')}</sub>"]
print("\n".join(lines))
PY
)"
echo "$body"
if [ -n "${PR_NUMBER:-}" ] && command -v gh >/dev/null; then
  gh pr comment "$PR_NUMBER" --body "$body"
fi
exit "$status"
