"""The machine a benchmark ran on, for its report: the CPU's model name with its family and
model numbers (a VM may hide the name's details) and its SIMD flags of interest, read from
/proc/cpuinfo. Results are kept one file per CPU class met."""
import platform

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16")


def cpu_info():
    """(model, flags): e.g. ("AMD EPYC (family 25, model 1)", ["avx2", "fma"])."""
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
    have = set(fields.get("flags", "").split())
    model = f"{fields.get('model name', platform.processor() or 'unknown')} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return model, [x for x in FLAGS if x in have]
