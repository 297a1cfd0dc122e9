# contrast: a plain Makefile.
#   make            build libcontrast.a, libcontrast.so and ./contrast
#   make test       install missing Debian packages, build, run every test
#   make run        install, build, train SimCLR on Fashion-MNIST, evaluate
#   make bench      speed and memory against PyTorch on this CPU
#   make SANITIZE=1 test   the same tests under ASan + UBSan (build-san/)
#   make fuzz       libFuzzer targets (clang) in build-fuzz/; `make fuzz-ci` runs each briefly
#   make MPI=0      build without Open MPI (default: with it when mpicc exists)
#   make PORTABLE=1 build for any x86-64 (no -march=native; the SIMD kernels take their plain paths)
#   make install PREFIX=/usr/local [DESTDIR=...]   library, headers, contrast.pc, binary, man page,
#                   the Python package (PREFIX/lib/python3/dist-packages/contrast)
#   make uninstall  remove what install put there (same PREFIX / DESTDIR)
#   make clean
CC      ?= cc
VERSION := $(shell sed -n 's/^\#define CT_VERSION "\(.*\)"/\1/p' include/contrast/core.h)
SOMAJOR := 0
ifeq ($(PORTABLE),1)
  OPT   ?= -O2
  BUILD ?= build-portable
else
  OPT   ?= -O2 -march=native
endif
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Wstrict-prototypes -fopenmp -fPIC -fvisibility=hidden \
           -D_POSIX_C_SOURCE=200809L -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread \
           -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lopenblas -lpng -ljpeg -lz -lm
LDFLAGS := -fopenmp $(EXTRA_LDFLAGS)
BUILD   ?= build

# Open MPI: MPI=auto (default) builds with it when mpicc is installed, MPI=1
# requires it, MPI=0 builds without (a world of one process).
MPI ?= auto
ifeq ($(MPI),auto)
  MPI := $(if $(shell command -v mpicc 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
  CFLAGS  += -DCT_MPI $(shell mpicc --showme:compile)
  LDLIBS  += $(shell mpicc --showme:link)
endif

ifeq ($(SANITIZE),1)
  BUILD   := build-san
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# The default build's CLI is ./contrast; other builds (SANITIZE, PORTABLE, BUILD=...)
# keep theirs in their own folder.
ifeq ($(BUILD),build)
  CLI_BIN := contrast
else
  CLI_BIN := $(BUILD)/contrast
endif

.PHONY: all lib install uninstall examples test test-run run run-main bench bench-run deps deps-torch deps-fuzz fuzz fuzz-ci clean
all: $(BUILD)/libcontrast.a $(BUILD)/libcontrast.so $(CLI_BIN)
lib: $(BUILD)/libcontrast.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libcontrast.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library carries a soname (libcontrast.so.0); libcontrast.so and
# libcontrast.so.0 are links to the versioned file, as Debian's packages lay them out.
$(BUILD)/libcontrast.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libcontrast.so.$(SOMAJOR) -o $@ $^ $(LDLIBS)

$(BUILD)/libcontrast.so: $(BUILD)/libcontrast.so.$(VERSION)
	ln -sf libcontrast.so.$(VERSION) $(BUILD)/libcontrast.so.$(SOMAJOR)
	ln -sf libcontrast.so.$(VERSION) $@

$(CLI_BIN): $(CLI_OBJ) $(BUILD)/libcontrast.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libcontrast.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/harness.h $(BUILD)/libcontrast.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcontrast.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcontrast.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcontrast.a $(LDFLAGS) $(LDLIBS)

deps:
	@sh tools/deps.sh

deps-torch:
	@sh tools/deps.sh torch

# test, run and bench install the packages first, then build in a fresh make, so
# what was just installed (e.g. Open MPI on a new machine) is detected.
test: deps
	@$(MAKE) --no-print-directory test-run

# The Python binding's tests (tests/test_python.py) run as one more test binary: a
# wrapper that points the package at this build's library. Not under SANITIZE: an
# ASan library cannot be loaded into an uninstrumented python3.
ifneq ($(SANITIZE),1)
  PY_TEST := $(BUILD)/tests/test_python
endif
test-run: all $(TEST_BIN) $(PY_TEST)
	@sh tests/run.sh $(BUILD) $(CLI_BIN)

$(BUILD)/tests/test_python: tests/test_python.py
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\n# made by the Makefile: tests/test_python.py against this build\ncd "%s" && PYTHONPATH=python CONTRAST_LIB="%s" exec /usr/bin/python3 tests/test_python.py "$$@"\n' \
	    "$(CURDIR)" "$(CURDIR)/$(BUILD)/libcontrast.so" > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@

run: deps
	@$(MAKE) --no-print-directory run-main

run-main: all
	sh tools/main_job.sh $(ARGS)

bench: deps deps-torch
	@$(MAKE) --no-print-directory bench-run

bench-run: all $(BENCH_BIN)
	sh bench/run.sh $(BUILD)

# ---- fuzzing: clang + libFuzzer + ASan/UBSan (docs/security.md) ----------------------
# The library and the CLI parsers are compiled with coverage (fuzzer-no-link); each
# fuzz/fuzz_*.c links into its own libFuzzer binary. fuzz_cli replaces the calls that
# would train, load or write (see fuzz/fuzz_cli.c) with --wrap.
FUZZ_CC     ?= clang
FUZZ_BUILD  := build-fuzz
FUZZ_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -march=native -fopenmp -D_POSIX_C_SOURCE=200809L \
               -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread -MMD -MP \
               -Wall -Wextra -Wno-pass-failed -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ    := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(filter-out %/main.o,$(CLI_SRC:%.c=$(FUZZ_BUILD)/%.o))
FUZZ_WRAP   := ct_train_run ct_dataset_load ct_checkpoint_load_model ct_evaluate ct_extract_features \
               ct_png_write ct_atomic_open ct_set_threads ct_augment_view \
               ct_data_eval_batch ct_st_open cli_is_clip_checkpoint ct_clip_load \
               ct_caption_dataset_load ct_caption_folder_load ct_image_load_rgb \
               ct_text_dataset_load ct_zeroshot_read_classes ct_zeroshot_read_templates
FUZZ_LD_cli := $(FUZZ_WRAP:%=-Wl,--wrap=%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libcontrast-fuzz.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) $(FUZZ_BUILD)/libcontrast-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libcontrast-fuzz.a $(FUZZ_LD_$*) $(LDLIBS)

deps-fuzz:
	@sh tools/deps.sh fuzz

fuzz: deps-fuzz $(FUZZ_BIN)

fuzz-ci: fuzz
	sh fuzz/run.sh $${FUZZ_SECONDS:-20}

# ---- install (PREFIX, DESTDIR as packagers expect) ------------------------------------
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig
PYDIR      ?= $(PREFIX)/lib/python3/dist-packages
PC_PRIVATE := $(LDFLAGS) $(LDLIBS)

# The manual page comes from the CLI's own option tables (`contrast man`), so it
# and --help never disagree.
$(BUILD)/contrast.1: $(CLI_BIN)
	./$(CLI_BIN) man > $@.tmp && mv $@.tmp $@

install: all $(BUILD)/contrast.1
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/contrast $(DESTDIR)$(BINDIR) $(DESTDIR)$(PCDIR) \
	    $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(BUILD)/libcontrast.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcontrast.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libcontrast.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcontrast.so.$(SOMAJOR)
	ln -sf libcontrast.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcontrast.so
	install -m 644 include/contrast.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/contrast/*.h $(DESTDIR)$(INCLUDEDIR)/contrast/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(strip $(PC_PRIVATE))|' tools/contrast.pc.in \
	    > $(DESTDIR)$(PCDIR)/contrast.pc
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/contrast
	install -m 644 $(BUILD)/contrast.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(PYDIR)/contrast
	install -m 644 python/contrast/*.py $(DESTDIR)$(PYDIR)/contrast/
	printf '# written by make install: where the package finds libcontrast.so.0\nLIBDIR = "%s"\n' \
	    "$(LIBDIR)" > $(DESTDIR)$(PYDIR)/contrast/_install.py

# The examples build against an installed library, as a user's program would:
#   make install PREFIX=$$HOME/.local && PKG_CONFIG_PATH=$$HOME/.local/lib/pkgconfig make examples
EXAMPLES_DIR ?= $(BUILD)/examples
examples:
	@mkdir -p $(EXAMPLES_DIR)
	for f in examples/*.c; do \
	    $(CC) -std=c11 -O2 -Wall -Wextra $$f $$(pkg-config --cflags --libs contrast) -lm \
	        -o $(EXAMPLES_DIR)/$$(basename $$f .c) || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libcontrast.a $(DESTDIR)$(LIBDIR)/libcontrast.so \
	      $(DESTDIR)$(LIBDIR)/libcontrast.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libcontrast.so.$(VERSION) \
	      $(DESTDIR)$(INCLUDEDIR)/contrast.h $(DESTDIR)$(PCDIR)/contrast.pc $(DESTDIR)$(BINDIR)/contrast \
	      $(DESTDIR)$(MANDIR)/man1/contrast.1
	rm -rf $(DESTDIR)$(INCLUDEDIR)/contrast $(DESTDIR)$(PYDIR)/contrast

clean:
	rm -rf build build-san build-fuzz build-portable contrast

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(wildcard $(FUZZ_BUILD)/*/*/*.d)
