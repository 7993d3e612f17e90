# codebot — build, run, test. `make run` and `make test` work on a fresh Debian 12 machine:
# they install missing packages (scripts/deps.sh), build, and start the private Redis they need.

BUILD    ?= build
CC       ?= cc
PKGS     := libuv libcurl libcjson hiredis libseccomp
OPT      ?= -O2 -g
CFLAGS   := $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -Wformat=2 -Wstrict-prototypes -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is only compiled against: bot/curl_api.c loads it when the bot first needs HTTP,
# so that `codebot exec` starts without its thirty shared libraries.
LDLIBS   := $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null) -ldl -lm
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRCS  := $(filter-out bot/main.c,$(wildcard common/*.c bot/*.c adapters/*.c store/*.c sandbox/*.c))
EMBED     := $(sort $(wildcard sandbox/kernel/*.py sandbox/kernel/*.js))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps build run test test-unit test-asan bench lint fuzz clean redis-start redis-stop
all: build
build: $(BUILD)/codebot $(UNIT_BINS)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/embedded.c: $(EMBED) scripts/embed.py
	@mkdir -p $(dir $@)
	python3 scripts/embed.py $@ $(EMBED)

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcodebot.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/codebot: $(BUILD)/bot/main.o $(BUILD)/libcodebot.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libcodebot.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcodebot.a $(LDLIBS)

run: deps build
	@scripts/run.sh

# Every test, each in its own process with a timeout; then the whole suite again under
# AddressSanitizer + UBSan.
test: deps build
	@scripts/test.sh $(BUILD)
	@$(MAKE) --no-print-directory test-asan

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g $(SANITIZE)" build
	@CODEBOT_ASAN=1 scripts/test.sh build-asan

bench: deps build
	@scripts/bench.sh $(BUILD)

lint:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --suppress=missingIncludeSystem -I. $$(git ls-files '*.c')

fuzz:
	@mkdir -p $(BUILD)/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	    clang -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
	      $(shell pkg-config --cflags $(PKGS)) -o $(BUILD)/fuzz/$$n $$f \
	      $$(grep -o '^// fuzz-sources: .*' $$f | cut -d: -f2) $(LDLIBS) || exit 1; \
	    $(BUILD)/fuzz/$$n -max_total_time=$${FUZZ_SECONDS:-20} || exit 1; done

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
