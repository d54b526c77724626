"""Writes the identifier retrieval set (bench/retrieval/identifiers): 100 short support notes,
40 of which each describe one made-up error code, and 40 questions that name a code
("how do I fix ERR_...?"). The other 60 notes are generic troubleshooting text that matches
"how do I fix" well by meaning, which is what made rank fusion put the one note holding the code
below them. Deterministic (fixed seed); rerun to regenerate.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "identifiers")
rng = random.Random(7)

parts = ["sync agent", "print spooler", "backup job", "mail relay", "license server", "VPN client",
         "disk monitor", "search crawler", "billing export", "camera bridge", "badge reader", "wiki indexer"]
things = ["the token store", "the upstream mirror", "the quota table", "the audit log", "the key vault",
          "the session cache", "the replica set", "the time server"]
fixes = ["restart the {p}, then check the permissions of {t}",
         "renew the certificate of {t} and reload the {p}",
         "free space on the volume that holds {t}, then run the {p} again",
         "reset the {p}'s credentials and grant it read access to {t}"]
generic = ["How do I fix problems with the {p}? To fix most problems, first read the logs, then restart the {p} "
           "and try again. If the problem comes back, fix the configuration and ask support how to fix it for good.",
           "Troubleshooting the {p}: when something fails, look at recent changes, check the network, and restart "
           "the service. Most errors go away after a restart; persistent errors need a support ticket.",
           "The {p} reports errors in its log. To fix an error, note the time it happened, collect the log lines "
           "around it, and follow the runbook for the {p}."]


def code(i):
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "ERR_" + rng.choice(letters) + str(rng.randrange(1, 10)) + str(rng.randrange(1000, 9999)) + rng.choice(letters)


def main():
    os.makedirs(os.path.join(OUT, "corpus"), exist_ok=True)
    questions = []
    asks = ["how do I fix {c}?", "what does error {c} mean?", "{c} keeps appearing, what should I do?",
            "the {p} shows {c}, how to resolve it?"]
    for i in range(100):
        p = parts[i % len(parts)]
        t = things[i % len(things)]
        name = f"note-{i:03}.md"
        if i < 40:
            c = code(i)
            text = (f"# {p.capitalize()} error {c}\n\nError {c} is reported when the {p} cannot reach {t}. "
                    f"Resolution: {fixes[i % len(fixes)].format(p=p, t=t)}.\n")
            questions.append({"question": asks[i % len(asks)].format(c=c, p=p), "source": name, "answer": c})
        else:
            text = f"# {p.capitalize()} troubleshooting\n\n{generic[i % len(generic)].format(p=p)}\n"
        with open(os.path.join(OUT, "corpus", name), "w") as f:
            f.write(text)
    with open(os.path.join(OUT, "questions.jsonl"), "w") as f:
        for q in questions:
            f.write(json.dumps(q) + "\n")
    print(f"{len(questions)} questions, 100 notes in {OUT}")


if __name__ == "__main__":
    main()
