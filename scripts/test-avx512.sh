#!/usr/bin/env bash
# Runs the kernel tests (crates/quiver-kernels) on an emulated AVX-512 CPU, for the machines that
# have none: Bochs boots Debian's kernel with an initramfs of busybox and the two test binaries,
# and the results come back through the emulated serial port.
#
# The emulated CPU has Cooper Lake's AVX-512: F, CD, BW, DQ, VL, VNNI and BF16. It is Bochs 3.0's
# Skylake-X with VNNI and BF16 added (`add_features`), and one patch to Bochs: its Skylake-X model
# reports a fixed CPUID leaf 7, so the patch makes it report the extensions actually enabled
# (leaf 7 ECX, and sub-leaf 1 for BF16). Bochs's own Tiger Lake and Sapphire Rapids models hang
# Linux 6.1 early in its boot (after "LSM: Security Framework initializing"), also with the newer
# features turned off. Bochs 3.0 is built from Debian 13's source package: bookworm's Bochs 2.7
# has no AVX512_BF16.
#
# Not part of CI: it installs packages and builds Bochs (about 5 minutes, once), and Bochs runs
# some 15-40 million instructions a second. A run then takes about 5 minutes (4m22s on an AMD
# EPYC Zen 3): the boot, the tests, the embedding. `scans_match_brute_force` is skipped unless
# --all is given (it alone runs for over an hour). Run it after touching an AVX-512 kernel (simd/x86.rs,
# panels.rs, panels/bf16dot.rs, qmm, nn, quant, f16).
#
# After the tests the guest embeds three sentences with `quiver embed` at the default precision,
# which on this CPU computes with `vdpbf16ps`: `quiver bench embed` must report `bf16-dot`, and
# each vector's cosine with this machine's (f32) must be at least 0.9999. --no-embed skips it
# (it adds the release `quiver` and the 90 MB model to the initramfs, and a few minutes).
#
# Usage: scripts/test-avx512.sh [--all] [--no-embed] [--cases N] [--timeout S] [FILTER...]
#   N: PROPTEST_CASES in the guest (default 32).  S: the emulator's time limit (default 3600 s).
#   FILTER: passed to both test binaries, as to `cargo test` (e.g. `panels qmm block_kernels`).
# Exit status: 0 when both binaries ran and passed on a guest with AVX-512 F, VNNI and BF16.
# Work files: target/avx512-emu (the guest's whole output: serial.log there).
set -euo pipefail
cd "$(dirname "$0")/.."
cases=32 limit=3600 filters=() skip=(--skip scans_match_brute_force) embed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --all) skip=(); shift ;;
    --no-embed) embed=0; shift ;;
    --cases) cases="$2"; shift 2 ;;
    --timeout) limit="$2"; shift 2 ;;
    *) filters+=("$1"); shift ;;
  esac
done
repo="$PWD"
work="$repo/target/avx512-emu"
mkdir -p "$work"

need=()
for p in isolinux syslinux-common genisoimage busybox-static cpio bochsbios vgabios g++ make xz-utils; do
  dpkg -s "$p" > /dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# Bochs 3.0, from the source package of Debian 13 (trixie), read through a private apt state so
# the machine's own sources stay as they are. The archive's address is the one this machine's
# apt already uses.
bochs="$work/bochs-3.0/bochs"
if [ ! -x "$bochs" ]; then
  archive=$(grep -h -m1 -oE '^URIs: *[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -1 | awk '{print $2}')
  [ -n "$archive" ] || archive=$(grep -h -m1 -oE '^deb +[^ ]+/debian/? ' /etc/apt/sources.list 2> /dev/null | awk '{print $2}')
  [ -n "$archive" ] || { echo "no Debian archive found in this machine's apt sources" >&2; exit 1; }
  apt="$work/apt"
  mkdir -p "$apt/lists/partial" "$apt/parts"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $archive trixie main" > "$apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts" -o "Dir::State::Lists=$apt/lists")
  apt-get "${opts[@]}" update -qq
  # The orig tarball is all the build needs; the archive has been seen to serve it without
  # the .dsc, so apt's failure on the rest is not fatal here.
  (cd "$work" && apt-get "${opts[@]}" source --download-only -qq 'bochs=3.0+dfsg-1' || true)
  [ -f "$work/bochs_3.0+dfsg.orig.tar.xz" ] \
    || (cd "$work" && apt-get "${opts[@]}" source --download-only -qq 'bochs/trixie' || true)
  [ -f "$work/bochs_3.0+dfsg.orig.tar.xz" ] \
    || { echo "could not fetch Bochs 3.0's source (has Debian 13's package moved past 3.0?)" >&2; exit 1; }
  rm -rf "$work/bochs-3.0"
  tar -C "$work" -xf "$work/bochs_3.0+dfsg.orig.tar.xz"
  # The patch: Skylake-X's leaf 7 reports the enabled extensions (ECX) and has a sub-leaf 1.
  python3 - "$work/bochs-3.0/cpu/cpudb/intel/corei7_skylake-x.cc" << 'PATCH'
import sys
path = sys.argv[1]
text = open(path).read()
start = text.index("void corei7_skylake_x_t::get_std_cpuid_leaf_7(")
end = text.index("\n}\n", start)
body = text[start:end]
body = body.replace("leaf->eax = 0; /* report max sub-leaf", "leaf->eax = 1; /* report max sub-leaf", 1)
fixed = "    leaf->ecx = 0;\n    leaf->edx = 0;\n    break;\n  default:"
assert body.count(fixed) == 1, "Bochs's Skylake-X leaf 7 is not as expected"
body = body.replace(fixed, "    leaf->ecx = get_std_cpuid_leaf_7_ecx();\n    leaf->edx = 0;\n    break;\n"
                    "  case 1:\n    leaf->eax = get_std_cpuid_leaf_7_subleaf_1_eax();\n"
                    "    leaf->ebx = 0;\n    leaf->ecx = 0;\n    leaf->edx = 0;\n    break;\n  default:")
open(path, "w").write(text[:start] + body + text[end:])
PATCH
  (cd "$work/bochs-3.0" \
    && ./configure --enable-x86-64 --enable-avx --enable-evex --enable-all-optimizations --enable-cdrom \
      --with-nogui --without-x11 --without-x --disable-plugins --disable-usb --disable-ne2000 --disable-e1000 \
      > "$work/bochs-configure.log" 2>&1 \
    && make -j"$(nproc)" > "$work/bochs-make.log" 2>&1) \
    || { echo "building Bochs failed: see $work/bochs-*.log" >&2; exit 1; }
fi

# Debian's current kernel, unpacked (not installed).
kernel=$(ls "$work"/kimg/boot/vmlinuz-* 2> /dev/null | head -1 || true)
if [ -z "$kernel" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  (cd "$work" && rm -f linux-image-*.deb && apt-get download -qq "$pkg" 2> /dev/null)
  dpkg-deb -x "$work"/linux-image-*.deb "$work/kimg"
  kernel=$(ls "$work"/kimg/boot/vmlinuz-* | head -1)
fi

# The test binaries, as `cargo test --release` builds them.
mapfile -t tests < <(cargo test --release --locked -p quiver-kernels --no-run --message-format=json 2> /dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] + " " + m["executable"])')
[ ${#tests[@]} -ge 2 ] || { echo "expected two test binaries, found: ${tests[*]}" >&2; exit 1; }

root="$work/root"
rm -rf "$root" "$work/iso"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib64,lib/x86_64-linux-gnu} "$work/iso/isolinux"
cp /bin/busybox "$root/bin/"
for a in sh mount echo cat grep tr sync poweroff; do ln -s busybox "$root/bin/$a"; done
names=()
for t in "${tests[@]}"; do
  name=${t%% *} exe=${t#* }
  cp "$exe" "$root/bin/t-$name"
  names+=("t-$name")
  for lib in $(ldd "$exe" | grep -oE '/[^ ]+\.so[^ ]*'); do mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"; done
done
printf '%s\n' "${filters[@]}" "${skip[@]}" > "$root/filters"
if [ "$embed" = 1 ]; then
  cargo build --release --locked -p quiver-cli --quiet
  quiver="$repo/target/release/quiver"
  "$quiver" model pull > /dev/null
  model=$("$quiver" model list --json | python3 -c 'import json,sys; print([m["path"] for m in json.load(sys.stdin) if m["name"] == "all-minilm-l6-v2"][0])')
  cp "$quiver" "$root/bin/quiver"
  mkdir -p "$root/model"
  cp -rL "$model"/. "$root/model/"
  printf '%s\n' "The cat sat on the mat." \
    "Vector databases answer nearest-neighbour queries over embeddings." \
    "Mean pooling averages the token vectors of the last layer into one sentence vector, which is then normalised to unit length." \
    > "$root/texts"
  "$quiver" embed --model-dir "$model" --file "$root/texts" --jsonl > "$work/host-embed.jsonl"
fi
cat > "$root/init" << EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== cpu flags: \$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx|vnni|bf16|fma' | tr '\n' ' ')"
cd /tmp
export RUST_BACKTRACE=1 PROPTEST_CASES=$cases
for t in ${names[*]}; do
  echo "=== \$t"
  /bin/\$t --test-threads=1 \$(cat /filters) 2>&1
  echo "=== \$t exit \$?"
done
if [ -x /bin/quiver ]; then
  echo "=== bench"
  /bin/quiver bench embed --model-dir /model --file /texts --repeats 1 2>&1
  echo "=== embed"
  /bin/quiver embed --model-dir /model --file /texts --jsonl 2>&1
  echo "=== embed exit \$?"
fi
sync
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2> /dev/null | gzip -1) > "$work/iso/initrd.gz"
cp "$kernel" "$work/iso/vmlinuz"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$work/iso/isolinux/"
# clearcpuid=321,323 turns off XSAVEC and XSAVES: Bochs reports the compacted XSAVE size of the
# AVX-512 state wrongly, and Linux then turns XSAVE (so AVX) off altogether.
cat > "$work/iso/isolinux/isolinux.cfg" << 'EOF'
SERIAL 0 115200
DEFAULT k
PROMPT 0
TIMEOUT 1
LABEL k
  KERNEL /vmlinuz
  APPEND initrd=/initrd.gz console=ttyS0,115200 loglevel=3 clearcpuid=321,323 nopku idle=halt no_timer_check mitigations=off tsc=reliable
EOF
genisoimage -quiet -o "$work/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table -J -R "$work/iso"

cat > "$work/bochsrc" << EOF
megs: 1024
cpu: model=corei7_skylake_x, add_features="avx512vnni avx512bf16", count=1, ips=200000000
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path=$work/boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=$work/serial.log
display_library: nogui
log: $work/bochs.log
clock: sync=none
mouse: enabled=0
EOF
rm -f "$work/serial.log"
echo "booting Bochs (Skylake-X + VNNI + BF16; about 5 minutes), then: ${names[*]} ${filters[*]:-} ${skip[*]:-}" >&2
timeout --kill-after=10 "$limit" "$bochs" -q -f "$work/bochsrc" < /dev/null > "$work/bochs.out" 2>&1 || true

log="$work/serial.log"
grep -a -E '^=== [^b]|^test |^test result|panicked' "$log" || true
status=0
for n in "${names[@]}"; do
  if ! grep -a -q "^=== $n exit 0" "$log"; then
    echo "FAILED or did not finish: $n (the whole guest output: $log)" >&2
    status=1
  fi
done
for f in avx512f avx512_vnni avx512_bf16; do
  grep -a -q "^=== cpu flags: .*\\b$f\\b" "$log" || { echo "the guest's CPU had no $f" >&2; status=1; }
done
if [ "$embed" = 1 ]; then
  python3 - "$log" "$work/host-embed.jsonl" << 'CHECK' || status=1
import json, math, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8", "replace").replace("\r", "").split("\n")
def after(marker):
    return lines[lines.index(marker) + 1:] if marker in lines else []
bench = [json.loads(l) for l in after("=== bench")[:5] if l.startswith("{")]
guest = []
for l in after("=== embed"):
    if l.startswith("=== "):
        break
    if l.startswith("["):
        guest.append(json.loads(l))
host = [json.loads(l) for l in open(sys.argv[2])]
ok = True
products = bench[0].get("products") if bench else None
print(f"guest embedding products: {products}")
if products != "bf16-dot":
    print("FAILED: the guest did not embed with bf16-dot")
    ok = False
if len(guest) != len(host):
    print(f"FAILED: the guest embedded {len(guest)} texts, not {len(host)}")
    ok = False
for i, (g, h) in enumerate(zip(guest, host)):
    cos = sum(a * b for a, b in zip(g, h)) / math.sqrt(sum(a * a for a in g) * sum(b * b for b in h))
    print(f"text {i}: cosine with this machine's f32 embedding {cos:.7f}")
    ok = ok and cos >= 0.9999
sys.exit(0 if ok else 1)
CHECK
fi
exit $status
