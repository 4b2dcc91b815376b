# Sourced by the scripts that run sdss in a VM with Debian's kernel (which
# has sch_netem, where this machine's kernel does not): virtme-ng boots it
# under QEMU's software emulation on this machine's own filesystem.
#
#   vm_prepare NAME INSTALL   finds the kernel (kver), installs what is missing
#                             when INSTALL is 1, makes $work/out and $work/tmp
#                             (removed at exit, with the VM)
#   vm_boot SECONDS COMMAND   runs COMMAND (one shell word list) in the VM as
#                             root, in this directory, $work/out writable;
#                             its console goes to $work/vm.log
# KVM guests hang on this machine: --disable-kvm always (boot about 30 s).

# The newest kernel under /boot with netem (and, as a module, its sch_netem.ko).
netem_kernel() {
  local config ver
  for config in $(printf '%s\n' /boot/config-* | sort -V -r); do
    ver=${config#/boot/config-}
    [[ -r /boot/vmlinuz-$ver ]] || continue
    grep -q '^CONFIG_NET_SCH_NETEM=y' "$config" && { echo "$ver"; return; }
    grep -q '^CONFIG_NET_SCH_NETEM=m' "$config" &&
      find "/lib/modules/$ver" -name 'sch_netem.ko*' 2>/dev/null | grep -q . && { echo "$ver"; return; }
  done
}
# virtme-ng copies busybox into its initramfs: it must be a static one.
static_busybox() {
  local bb
  bb=$(command -v busybox-static || command -v busybox.static || command -v busybox) || return 1
  ! ldd "$bb" >/dev/null 2>&1
}
vm_prepare() {
  local name=$1 install=$2
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  PATH=$scripts_dir:$PATH
  apt=()
  command -v qemu-system-x86_64 >/dev/null || apt+=(qemu-system-x86)
  [[ -n "$(netem_kernel)" ]] || apt+=(linux-image-amd64)
  static_busybox || apt+=(busybox-static)
  pip=()
  command -v vng >/dev/null || pip+=(virtme-ng)
  if ((${#apt[@]} + ${#pip[@]})); then
    if ((!install)); then
      echo "$name: missing; install with:${apt[*]:+ apt-get install -y ${apt[*]};}${pip[*]:+ python3 -m pip install ${pip[*]}}" >&2
      exit 2
    fi
    if ((${#apt[@]})); then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${apt[@]}" >/dev/null
    fi
    ((${#pip[@]} == 0)) || python3 -m pip install -q --root-user-action=ignore "${pip[@]}"
    hash -r
  fi
  kver=$(netem_kernel) || true
  [[ -n "$kver" ]] || { echo "$name: no kernel with CONFIG_NET_SCH_NETEM under /boot" >&2; exit 2; }

  work=$(mktemp -d "/tmp/$name.XXXXXX")
  vm=
  cleanup() {
    # timeout runs the VM in its own process group and takes it down with itself.
    [[ -z "$vm" ]] || kill -TERM "$vm" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir "$work/out" "$work/tmp"
}

vm_boot() {
  local seconds=$1
  shift
  local status=0
  # vng's output goes to a file: QEMU reopens and truncates a redirected stdout.
  TMPDIR=$work/tmp timeout -k 10 "$seconds" vng --run "/boot/vmlinuz-$kver" --disable-kvm \
    --user root --memory 2G --cpus 2 --cwd "$PWD" --rwdir "$work/out" \
    --exec "$*" </dev/null >"$work/vm.log" 2>&1 &
  vm=$!
  wait "$vm" || status=$?
  vm=
  return "$status"
}
