#!/usr/bin/env bash
# Puts the photographs that scikit-image ships (skimage/data/ of its wheel on PyPI; see the
# wheel's skimage/data/README.txt for their sources and licences) into DIR: real JPEG and
# PNG photographs for `codebook extract` and the demo. Only the photographs are unpacked,
# not the drawings, test patterns or other files of the wheel. Idempotent: photographs
# already in DIR are kept, and nothing is downloaded when all are there.
#   usage: scripts/fetch-photographs.sh DIR
set -euo pipefail
if (($# != 1)); then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
photographs=(
    astronaut.png brick.png camera.png cell.png chelsea.png clock_motion.png coffee.png coins.png
    grass.png gravel.png hubble_deep_field.jpg ihc.png moon.png motorcycle_left.png motorcycle_right.png
    page.png retina.jpg rocket.jpg text.png
)
missing=()
for name in "${photographs[@]}"; do
    [[ -s "$dir/$name" ]] || missing+=("$name")
done
if ((${#missing[@]} == 0)); then
    echo "$dir has the ${#photographs[@]} photographs"
    exit 0
fi

mkdir -p "$dir"
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
echo "downloading the scikit-image wheel (pip) for ${#missing[@]} photographs"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$download" scikit-image
wheels=("$download"/scikit_image-*.whl)
[[ -f ${wheels[0]} ]] || { echo "error: pip downloaded no scikit-image wheel" >&2; exit 1; }

# Each photograph is written under a temporary name and renamed, so an interrupted run
# never leaves half a file that a later run would take as present.
python3 - "${wheels[0]}" "$dir" "${missing[@]}" <<'PYTHON'
import os, sys, zipfile
wheel, directory, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    present = set(archive.namelist())
    for name in names:
        member = "skimage/data/" + name
        if member not in present:
            print(f"warning: {name} is not in {os.path.basename(wheel)}", file=sys.stderr)
            continue
        partial = os.path.join(directory, "." + name + ".part")
        with open(partial, "wb") as out:
            out.write(archive.read(member))
        os.replace(partial, os.path.join(directory, name))
PYTHON
count=$(ls "$dir" | grep -cE '\.(png|jpg)$' || true)
echo "$dir has $count photographs"
