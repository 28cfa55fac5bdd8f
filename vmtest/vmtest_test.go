package vmtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNaturalCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64", -1},
		{"linux-image-6.12.117+deb12-amd64", "linux-image-6.12.43+deb12-amd64", 1},
		{"a", "a", 0},
	} {
		if got := naturalCompare(tc.a, tc.b); (got < 0) != (tc.want < 0) || (got == 0) != (tc.want == 0) {
			t.Errorf("naturalCompare(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
	re := kernelPackage("6.12", "amd64")
	for name, want := range map[string]bool{
		"linux-image-6.12.117+deb12-amd64-unsigned":    true,
		"linux-image-6.12.117+deb12-rt-amd64-unsigned": false,
		"linux-image-6.12.117+deb12-amd64":             false,
		"linux-image-6.1.0-56-amd64-unsigned":          false,
	} {
		if re.MatchString(name) != want {
			t.Errorf("kernel package pattern on %s: %v", name, !want)
		}
	}
	if !kernelPackage("6.1", "amd64").MatchString("linux-image-6.1.0-56-amd64-unsigned") {
		t.Error("6.1 pattern misses linux-image-6.1.0-56-amd64-unsigned")
	}
}

// The archive must be what the kernel unpacks: newc headers, names, sizes and 4-byte alignment.
func TestInitramfsFormat(t *testing.T) {
	rd := NewInitramfs()
	rd.AddData("/a/b/c.txt", []byte("hello"), 0o644)
	var buf bytes.Buffer
	if err := rd.Write(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	entries := map[string]string{}
	for off := 0; ; {
		hdr := string(data[off : off+110])
		if !strings.HasPrefix(hdr, "070701") {
			t.Fatalf("bad magic at %d: %q", off, hdr[:6])
		}
		field := func(i int) int {
			n, _ := strconv.ParseUint(hdr[6+8*i:14+8*i], 16, 32)
			return int(n)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(data[off+110 : off+110+namesize-1])
		off = align4(off + 110 + namesize)
		if name == "TRAILER!!!" {
			break
		}
		entries[name] = strconv.FormatUint(uint64(mode), 8) + ":" + string(data[off:off+size])
		off = align4(off + size)
	}
	for name, want := range map[string]string{"a": "40755:", "a/b": "40755:", "a/b/c.txt": "100644:hello", "proc": "40755:"} {
		if entries[name] != want {
			t.Errorf("entry %s = %q, want %q", name, entries[name], want)
		}
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

// harness returns the kernel and init to boot, which `make vmtest` provides.
func harness(t *testing.T) Options {
	o := Options{Arch: os.Getenv("VMTEST_ARCH"), Root: os.Getenv("VMTEST_ROOT"), Kernel: os.Getenv("VMTEST_KERNEL"), Init: os.Getenv("VMTEST_INIT")}
	if o.Kernel == "" || o.Init == "" {
		t.Skip("boots a VM: run by make vmtest (VMTEST_KERNEL and VMTEST_INIT unset)")
	}
	return o
}

func buildGuest(t *testing.T, o Options) string {
	bin := filepath.Join(t.TempDir(), "guest")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/guest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o.Arch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+o.Arch)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest fixture: %v: %s", err, out)
	}
	return bin
}

// A failing guest test fails the run, with the guest's status, through go test's -exec wrapper.
func TestHarnessFailingGuestFailsTheRun(t *testing.T) {
	o := harness(t)
	vmrun := os.Getenv("VMTEST_RUN")
	if vmrun == "" {
		t.Skip("VMTEST_RUN (the vmrun binary) unset")
	}
	cmd := exec.Command(vmrun, buildGuest(t, o), "exit", "3")
	cmd.Env = append(os.Environ(), "VMTEST_KERNEL="+o.Kernel, "VMTEST_INIT="+o.Init, "VMTEST_TIMEOUT=3m")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("vmrun exit status %d (%v), want the guest's 3; output:\n%s", code, err, out)
	}
	if !strings.Contains(string(out), "guest: exiting with 3 on purpose") {
		t.Errorf("the guest's output did not come back:\n%s", out)
	}
}

// A guest that never answers is killed at the timeout, and the error shows its console.
func TestHarnessKillsASilentGuest(t *testing.T) {
	o := harness(t)
	var out bytes.Buffer
	o.Timeout, o.Output = 25*time.Second, &out
	start := time.Now()
	_, err := RunTest(context.Background(), o, t.TempDir(), buildGuest(t, o), "hang")
	if err == nil {
		t.Fatal("a guest that never finished was reported as finished")
	}
	if took := time.Since(start); took > o.Timeout+30*time.Second {
		t.Errorf("killing the guest took %v", took)
	}
	msg := err.Error()
	if !strings.Contains(msg, "did not finish within") || !strings.Contains(msg, "--- guest console ---") ||
		!strings.Contains(msg, "Linux version") {
		t.Errorf("error does not say what happened or show the console:\n%s", msg)
	}
	if !strings.Contains(out.String(), "guest: hanging on purpose") {
		t.Errorf("the guest's live output was not streamed: %q", out.String())
	}
}

// An interrupted guest (vmrun's SIGINT or SIGTERM) is killed at once, and its files go.
func TestHarnessInterruptKillsTheGuest(t *testing.T) {
	o := harness(t)
	o.Timeout = 3 * time.Minute
	guest := buildGuest(t, o)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where RunTest writes the initramfs and qemu's console
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Output = cancelOn{"guest: hanging on purpose", cancel}
	_, err := RunTest(ctx, o, t.TempDir(), guest, "hang")
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("an interrupted guest: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("files left behind: %v", left)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), tmp) {
			t.Errorf("still running: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// cancelOn is an Output that cancels when a line contains text.
type cancelOn struct {
	text   string
	cancel context.CancelFunc
}

func (c cancelOn) Write(b []byte) (int, error) {
	if strings.Contains(string(b), c.text) {
		c.cancel()
	}
	return len(b), nil
}

// Modules are packed uncompressed with what they depend on first (testdata/modules: a.ko depends on
// b_x, whose file is b-x.ko.xz), and a module the kernel lacks is an error.
func TestAddModules(t *testing.T) {
	rd := NewInitramfs()
	order, err := rd.addModules("testdata/modules", []Module{{Name: "a"}, {Name: "b-x", Params: "n=0"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Module{{"/lib/modules/b_x.ko", "n=0"}, {"/lib/modules/a.ko", ""}}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for _, m := range order {
		p := m.Name
		f := rd.files[strings.TrimPrefix(p, "/")]
		if !bytes.HasPrefix(f.data, []byte("\x7fELF")) {
			t.Errorf("%s is not an uncompressed ELF: % x", p, f.data[:min(len(f.data), 8)])
		}
	}
	if _, err := NewInitramfs().addModules("testdata/modules", []Module{{Name: "ipvlan"}}); err == nil || !strings.Contains(err.Error(), "no module ipvlan") {
		t.Errorf("a missing module: %v", err)
	}
}
