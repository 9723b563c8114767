# mcpworks sandbox bootstrap (bash). Waits for exactly one call on stdin:
#   <env count> NUL (<name> NUL <value> NUL)* <script> NUL <arguments JSON until EOF>
# then runs the script in a fresh bash with the arguments on stdin and in ARGS_JSON, and reports
# its exit status on fd 3.
printf '\006' >&2 # ready: the interpreter is up and waits for its one call
IFS= read -r -d '' __n || exit 125
case $__n in '' | *[!0-9]*) exit 125 ;; esac
for ((__i = 0; __i < __n; __i++)); do
  IFS= read -r -d '' __k || exit 125
  IFS= read -r -d '' __v || exit 125
  export "$__k=$__v"
done
IFS= read -r -d '' __script || exit 125
IFS= read -r -d '' ARGS_JSON
export ARGS_JSON
unset __n __i __k __v
"$BASH" -c "$__script" tool <<<"$ARGS_JSON" 3>&-
__rc=$?
# Close our copies of stdout/stderr, then report the status on fd 3: the executor answers as soon
# as the script's output has drained, without waiting for the sandbox to be torn down.
exec 1>&- 2>&-
printf '%d\n' "$__rc" >&3
exit "$__rc"
