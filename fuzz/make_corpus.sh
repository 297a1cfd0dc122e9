#!/bin/sh
# Regenerates the committed seed corpora in fuzz/corpus/ (small valid files of every
# format the fuzz targets read). Needs the normal build (make).
set -e
cd "$(dirname "$0")/.."
make -s build/libcontrast.a
cc -std=c11 -O1 -D_DEFAULT_SOURCE -Iinclude -o build/make_corpus fuzz/make_corpus.c build/libcontrast.a \
   -fopenmp -lopenblas -lpng -ljpeg -lz -lm $(mpicc --showme:link 2>/dev/null)
rm -rf fuzz/corpus
build/make_corpus fuzz/corpus
du -sh fuzz/corpus
