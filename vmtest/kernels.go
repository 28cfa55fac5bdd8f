package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Kernel is a Debian kernel unpacked into the cache.
type Kernel struct {
	Series  string // "6.1", as asked for
	Package string // linux-image-6.1.0-56-amd64-unsigned
	Release string // 6.1.0-56-amd64
	Image   string // path to the vmlinuz
}

// kernelPackage matches Debian's plain amd64 kernel packages of a series (not -rt, not -cloud):
// linux-image-6.1.0-56-amd64-unsigned, linux-image-6.12.117+deb12-amd64-unsigned.
func kernelPackage(series string) *regexp.Regexp {
	return regexp.MustCompile(`^linux-image-` + regexp.QuoteMeta(series) + `[.-][0-9]+(-[0-9]+)?(\+deb[0-9]+)?-amd64-unsigned$`)
}

// FetchKernel finds the newest kernel package of a series in Debian's archive and unpacks it into
// cache (apt-get download + dpkg-deb -x: nothing is installed). An unpacked one is reused.
func FetchKernel(series, cache string) (Kernel, error) {
	k := Kernel{Series: series}
	names, err := aptPackageNames("linux-image-" + series)
	if err != nil {
		return k, err
	}
	re := kernelPackage(series)
	var matching []string
	for _, n := range names {
		if re.MatchString(n) {
			matching = append(matching, n)
		}
	}
	if len(matching) == 0 {
		return k, fmt.Errorf("no Debian kernel package for %s (looked for %s)", series, re)
	}
	slices.SortFunc(matching, naturalCompare)
	k.Package = matching[len(matching)-1]
	k.Release = strings.TrimSuffix(strings.TrimPrefix(k.Package, "linux-image-"), "-unsigned")
	dir := filepath.Join(cache, k.Package)
	k.Image = filepath.Join(dir, "boot", "vmlinuz-"+k.Release)
	if _, err := os.Stat(k.Image); err == nil {
		return k, nil
	}
	dl, err := os.MkdirTemp(cache, "download")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(dl)
	cmd := exec.Command("apt-get", "download", "-q", k.Package)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return k, fmt.Errorf("apt-get download %s: %v: %s", k.Package, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	if len(debs) != 1 {
		return k, fmt.Errorf("apt-get download %s left %d packages", k.Package, len(debs))
	}
	tmp := dir + ".partial"
	os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return k, fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, out)
	}
	// Only /boot is needed: the guest loads no modules.
	os.RemoveAll(filepath.Join(tmp, "lib"))
	os.RemoveAll(filepath.Join(tmp, "usr"))
	if err := os.Rename(tmp, dir); err != nil {
		return k, err
	}
	if _, err := os.Stat(k.Image); err != nil {
		return k, fmt.Errorf("%s has no %s", k.Package, k.Image)
	}
	return k, nil
}

// aptPackageNames lists package names with a prefix, updating the package lists once if they
// know none (a fresh machine).
func aptPackageNames(prefix string) ([]string, error) {
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("apt-cache", "pkgnames", prefix).Output()
		if err != nil {
			return nil, fmt.Errorf("apt-cache pkgnames %s: %w", prefix, err)
		}
		if names := strings.Fields(string(out)); len(names) > 0 || attempt > 0 {
			return names, nil
		}
		if out, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update: %v: %s", err, out)
		}
	}
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
