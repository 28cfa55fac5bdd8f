package vmtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Apt is an apt configuration of its own (sources, package lists, cache, all under Dir) for
// another Debian release or architecture than the system's: nothing is added to the system. Its
// sources are the system's Debian sources with the release renamed, so no archive is named here.
// The zero Apt is the system's own.
type Apt struct {
	Dir   string // where its sources, lists and cache live
	Suite string // the Debian release: bullseye, bookworm
	Arch  string // the dpkg architecture: amd64, arm64
}

// systemSources is where Debian (12 and later) keeps its deb822 sources.
const systemSources = "/etc/apt/sources.list.d/debian.sources"

// opts are the apt options that make apt-get and apt-cache use this configuration.
func (a Apt) opts() []string {
	if a.Dir == "" {
		return nil
	}
	return []string{
		"-o", "Dir::Etc::sourcelist=/dev/null",
		"-o", "Dir::Etc::sourceparts=" + filepath.Join(a.Dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.Dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.Dir, "cache"),
		"-o", "Dir::State::status=/dev/null",
		"-o", "APT::Architecture=" + a.Arch,
		"-o", "APT::Architectures::=" + a.Arch,
	}
}

// prepare writes the sources and fetches the package lists once.
func (a Apt) prepare() error {
	if a.Dir == "" {
		return nil
	}
	lists := filepath.Join(a.Dir, "lists")
	if m, _ := filepath.Glob(filepath.Join(lists, "*Packages*")); len(m) > 0 {
		return nil
	}
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, d), 0o755); err != nil {
			return err
		}
	}
	sources, err := a.sources()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "sources.list.d", "debian.sources"), []byte(sources), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("apt-get", append(a.opts(), "update", "-q")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update (%s %s): %v: %s", a.Suite, a.Arch, err, out)
	}
	return nil
}

// sources rewrites the system's Debian sources for this release and architecture: the suites
// "bookworm", "bookworm-updates", "bookworm-security" become this release's.
func (a Apt) sources() (string, error) {
	f, err := os.Open(systemSources)
	if err != nil {
		return "", fmt.Errorf("reading the system's Debian sources: %w", err)
	}
	defer f.Close()
	var out strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Suites:"); ok {
			var suites []string
			for _, s := range strings.Fields(rest) {
				_, suffix, _ := strings.Cut(s, "-")
				if suffix != "" {
					suffix = "-" + suffix
				}
				suites = append(suites, a.Suite+suffix)
			}
			line = "Suites: " + strings.Join(suites, " ")
		}
		if strings.HasPrefix(line, "Architectures:") {
			continue
		}
		if strings.HasPrefix(line, "Types:") {
			line += "\nArchitectures: " + a.Arch
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !strings.Contains(out.String(), "Suites:") {
		return "", fmt.Errorf("%s names no suites", systemSources)
	}
	return out.String(), nil
}

// PackageNames lists the package names with a prefix, updating the package lists once if they
// know none (a fresh machine).
func (a Apt) PackageNames(prefix string) ([]string, error) {
	if err := a.prepare(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("apt-cache", append(a.opts(), "pkgnames", prefix)...).Output()
		if err != nil {
			return nil, fmt.Errorf("apt-cache pkgnames %s: %w", prefix, err)
		}
		if names := strings.Fields(string(out)); len(names) > 0 || attempt > 0 {
			return names, nil
		}
		cmd := exec.Command("apt-get", append(a.opts(), "update", "-q")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update: %v: %s", err, out)
		}
	}
}

// Download fetches a package's .deb into dir and returns its path.
func (a Apt) Download(pkg, dir string) (string, error) {
	if err := a.prepare(); err != nil {
		return "", err
	}
	cmd := exec.Command("apt-get", append(a.opts(), "download", "-q", pkg)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v: %s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, strings.SplitN(pkg, "=", 2)[0]+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d packages", pkg, len(debs))
	}
	return debs[0], nil
}
