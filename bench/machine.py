"""The machine a benchmark ran on, for its report: the CPU's model name with its family and
model numbers (a VM may hide the name's details) and its SIMD flags of interest, read from
/proc/cpuinfo. Results are kept one file per CPU class met."""
import platform

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16")


def _fields():
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        pass
    return fields


def cpu_info():
    """(model, flags): e.g. ("AMD EPYC (family 25, model 1)", ["avx2", "fma"])."""
    fields = _fields()
    have = set(fields.get("flags", "").split())
    model = f"{fields.get('model name', platform.processor() or 'unknown')} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return model, [x for x in FLAGS if x in have]


def cpu_class():
    """A short name for the CPU class, for result file names: e.g. "amd-f25-m1"."""
    fields = _fields()
    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(fields.get("vendor_id", ""), "cpu")
    return f"{vendor}-f{fields.get('cpu family', 'x')}-m{fields.get('model', 'x')}"


if __name__ == "__main__":
    print(cpu_class())
