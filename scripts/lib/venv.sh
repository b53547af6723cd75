# Sourced by the scripts that run kafka-compat (broker, cluster, test, bench,
# chaos): `ensure_venv base|test` makes $VENV (ROOT/.venv) and installs the
# package into it, plain or with its test extra; it does nothing when that is
# already done for the current pyproject.toml.
#
# Which Python: $KAFKA_COMPAT_PYTHON if set; else the operating system's
# /usr/bin/python3 when it is 3.11 or newer and can make a virtualenv; else
# python3 from PATH. Distributions build their Python with profile-guided and
# link-time optimisation, which a plain source build (pyenv's default) lacks:
# on Debian 12 the broker spent about a tenth less CPU per request on the
# system's Python 3.11 than on pyenv's (docs/performance.md). A virtualenv
# made from another interpreter than the one chosen is made again.

venv_python() {
    local candidate
    if [[ -n "${KAFKA_COMPAT_PYTHON:-}" ]]; then
        candidate="$KAFKA_COMPAT_PYTHON"
        _python_usable "$candidate" && { echo "$candidate"; return 0; }
        echo "error: KAFKA_COMPAT_PYTHON=$candidate is not a Python >= 3.11 that can make a virtualenv" >&2
        return 1
    fi
    for candidate in /usr/bin/python3 python3; do
        _python_usable "$candidate" && { echo "$candidate"; return 0; }
    done
    echo "error: python3 is $(python3 -V 2>&1); kafka-compat needs Python >= 3.11 (with its venv module)" >&2
    return 1
}

_python_usable() {
    "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

_make_venv() {
    local python want have
    python="$(venv_python)" || exit 1
    want="$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
    if [[ -x "$VENV/bin/python" ]]; then
        have="$("$VENV/bin/python" -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null || true)"
        [[ "$have" == "$want" ]] && return 0
        echo "making virtualenv $VENV again, with $want (it was made with ${have:-an interpreter that is gone})"
        rm -rf "$VENV"
    else
        echo "creating virtualenv $VENV with $want"
    fi
    "$python" -m venv "$VENV"
}

ensure_venv() {
    local flavour="$1" want stamp stamps
    _make_venv
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    # The test extra is a superset of the plain install: for base, either stamp will do.
    stamps=("$VENV/.installed-test")
    [[ "$flavour" == base ]] && stamps+=("$VENV/.installed-base")
    for stamp in "${stamps[@]}"; do
        if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/kafka-compat" ]]; then
            return 0
        fi
    done
    if [[ "$flavour" == base ]]; then
        echo "installing kafka-compat into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT"
    else
        echo "installing kafka-compat with its test dependencies into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
    fi
    echo "$want" > "$VENV/.installed-$flavour"
}
