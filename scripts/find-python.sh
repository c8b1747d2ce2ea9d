# Sourced by the scripts in this folder: find_python X.Y prints a CPython X.Y that has its
# headers (needed to build the extension), preferring pyenv's builds, else python X.Y on PATH.
find_python() {
    local v=$1 p root=${PYENV_ROOT:-$HOME/.pyenv}
    for p in "$root"/versions/"$v".*/bin/python"$v" "$(command -v "python$v" 2>/dev/null)"; do
        if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_h_filename())' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
