# Shared by the 8B GPU bench scripts (source it; root and b set): the random
# Llama-3.1-8B-shaped folders and the env variants.

# random_8b OUT FORMATS: writes the folders of FORMATS (comma-separated: bf16, mlx4, ...) under
# OUT with scripts/make_random_models.py unless they are all there
random_8b() {
  local out="$1" formats="$2" f missing=0
  for f in ${formats//,/ }; do
    [[ -s $out/Llama-3.1-8B-random-$f/config.json ]] || missing=1
  done
  [[ $missing == 0 ]] && return 0
  local t0=$SECONDS
  python3 "$root/scripts/make_random_models.py" --shape llama-3.1-8b --out "$out" \
    --formats "$formats" --jobs "$(nproc)" --sglc "$b/sglc" >/dev/null || return 1
  echo "$formats folders written in $((SECONDS - t0)) s"
}

# venv VARIANT CMD...: CMD with the variant's settings in its environment (a variant is
# NAME=VALUE settings joined by ':', or "default")
venv() {
  local v="$1" e=()
  shift
  [[ $v != default ]] && IFS=: read -ra e <<<"$v"
  (
    for a in "${e[@]}"; do export "${a?}"; done
    "$@"
  )
}
