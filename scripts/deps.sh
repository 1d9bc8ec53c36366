# Sourced by the scripts beside it: install what a fresh Debian 12 machine
# lacks to build and test crtfs.  Runs apt only when something is missing.
CRTFS_PACKAGES="autoconf automake libtool pkg-config make gcc libc6-dev \
libglib2.0-dev libglib2.0-bin libfuse3-dev fuse3 python3 socat valgrind systemd \
dbus-daemon python3-dbusmock nodejs ser2net jq \
libudev-dev libumockdev-dev umockdev mosquitto mosquitto-clients"

crtfs_install_deps() {
    local missing=()
    local p
    for p in $CRTFS_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "crtfs: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}
