package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Kernel is a Debian kernel unpacked into the cache: its image and its modules.
type Kernel struct {
	Series  string // "6.1", as asked for
	Arch    string // amd64 or arm64
	Package string // linux-image-6.1.0-56-amd64-unsigned
	Release string // 6.1.0-56-amd64
	Image   string // path to the vmlinuz
}

// ModulesDir is where the modules of the kernel whose image FetchKernel unpacked at image are:
// <package>/lib/modules/<release>, beside <package>/boot/vmlinuz-<release>.
func ModulesDir(image string) string {
	release := strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
	return filepath.Join(filepath.Dir(filepath.Dir(image)), "lib", "modules", release)
}

// kernelPackage matches Debian's plain kernel packages of a series and architecture (not -rt,
// not -cloud): linux-image-6.1.0-56-amd64-unsigned, linux-image-6.12.117+deb12-arm64-unsigned.
func kernelPackage(series, arch string) *regexp.Regexp {
	return regexp.MustCompile(`^linux-image-` + regexp.QuoteMeta(series) + `[.-][0-9]+(-[0-9]+)?(\+deb[0-9]+)?-` + arch + `-unsigned$`)
}

// KernelApt returns the apt configuration that has a kernel series for an architecture: 5.10 is
// Debian 11's (bullseye), the others Debian 12's; another architecture than the host's, or
// another release, gets a private configuration under cache.
func KernelApt(series, arch, cache string) Apt {
	suite := "bookworm"
	if series == "5.10" {
		suite = "bullseye"
	}
	if suite == "bookworm" && arch == hostArch() {
		return Apt{}
	}
	return Apt{Dir: filepath.Join(cache, "apt-"+suite+"-"+arch), Suite: suite, Arch: arch}
}

// FetchKernel finds the newest kernel package of a series in Debian's archive and unpacks its image
// and modules into cache (apt-get download + dpkg-deb -x: nothing is installed). An unpacked one is
// reused (unpacked again if it has no modules: vmtest kept none before guests loaded some). Some
// listed security builds are not downloadable: the next older is tried then.
func FetchKernel(series, arch, cache string) (Kernel, error) {
	k := Kernel{Series: series, Arch: arch}
	a := KernelApt(series, arch, cache)
	names, err := a.PackageNames("linux-image-" + series)
	if err != nil {
		return k, err
	}
	re := kernelPackage(series, arch)
	var matching []string
	for _, n := range names {
		if re.MatchString(n) {
			matching = append(matching, n)
		}
	}
	if len(matching) == 0 {
		return k, fmt.Errorf("no Debian kernel package for %s on %s (looked for %s)", series, arch, re)
	}
	slices.SortFunc(matching, naturalCompare)
	var errs []string
	for i := len(matching) - 1; i >= 0 && i >= len(matching)-4; i-- {
		k.Package = matching[i]
		k.Release = strings.TrimSuffix(strings.TrimPrefix(k.Package, "linux-image-"), "-unsigned")
		dir := filepath.Join(cache, k.Package)
		k.Image = filepath.Join(dir, "boot", "vmlinuz-"+k.Release)
		if _, err := os.Stat(ModulesDir(k.Image)); err == nil {
			return k, nil
		}
		if err := unpackKernel(a, k, dir, cache); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		return k, nil
	}
	return k, fmt.Errorf("no kernel of %s on %s could be fetched: %s", series, arch, strings.Join(errs, "; "))
}

func unpackKernel(a Apt, k Kernel, dir, cache string) error {
	dl, err := os.MkdirTemp(cache, "download")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dl)
	deb, err := a.Download(k.Package, dl)
	if err != nil {
		return err
	}
	tmp := dir + ".partial"
	os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
	}
	// /boot and /lib/modules are what guests need (GuestModules).
	os.RemoveAll(filepath.Join(tmp, "usr"))
	if _, err := os.Stat(filepath.Join(tmp, "lib", "modules", k.Release)); err != nil {
		return fmt.Errorf("%s has no modules: %w", k.Package, err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	if _, err := os.Stat(k.Image); err != nil {
		return fmt.Errorf("%s has no %s", k.Package, k.Image)
	}
	return nil
}

// hostArch is this machine's dpkg architecture.
func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "amd64"
}

// naturalCompare orders strings with their digit runs compared as numbers: 6.1.0-9 < 6.1.0-56.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
