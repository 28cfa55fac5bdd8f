package vmtest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GuestModules are the kernel modules every guest loads before its test runs (Debian builds them
// as modules; guests have no modprobe), with their parameters: ipvlan, and dummy for a parent
// device, since guests have no NIC (qemu's -nodefaults), making none itself (it makes dummy0 by
// default, which would change every guest's interfaces). trace netlink's ipvlan address collision
// needs both.
var GuestModules = []Module{{Name: "ipvlan"}, {Name: "dummy", Params: "numdummies=0"}}

// Module is a kernel module to load: by name on the host (GuestModules), or a guest path in a
// Spec.
type Module struct {
	Name   string `json:"name"`
	Params string `json:"params,omitempty"`
}

// guestModuleDir is where the initramfs holds the modules, uncompressed, named <name>.ko.
const guestModuleDir = "/lib/modules"

// addModules packs the modules mods and those they depend on, from dir (a kernel's
// /lib/modules/<release>), uncompressed, and returns them by guest path in an order that loads
// each after what it depends on. Debian's packages carry no modules.dep (depmod makes it at install):
// the dependencies are read from each module's .modinfo. Newer kernels' modules are xz-compressed
// (.ko.xz), which the host's xz undoes, so that the guest loads a plain ELF on any kernel.
func (r *Initramfs) addModules(dir string, mods []Module) ([]Module, error) {
	files := map[string]string{} // module name ("-" as "_") to its file
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := d.Name()
		for _, ext := range []string{".ko", ".ko.xz"} {
			if name, ok := strings.CutSuffix(base, ext); ok {
				files[moduleName(name)] = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the modules of %s: %w", dir, err)
	}
	var order []Module
	state := map[string]int{} // 1: being added, 2: added
	params := map[string]string{}
	for _, m := range mods {
		params[moduleName(m.Name)] = m.Params
	}
	var add func(name string, chain []string) error
	add = func(name string, chain []string) error {
		name = moduleName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s depends on itself through %v", name, chain)
		case 2:
			return nil
		}
		file, ok := files[name]
		if !ok {
			return fmt.Errorf("no module %s in %s (wanted by %v)", name, dir, append(chain, name))
		}
		data, err := moduleData(file)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		state[name] = 1
		for _, d := range deps {
			if err := add(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		guest := guestModuleDir + "/" + name + ".ko"
		r.AddData(guest, data, 0o644)
		order = append(order, Module{Name: guest, Params: params[name]})
		return nil
	}
	for _, m := range mods {
		if err := add(m.Name, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName is how the kernel names a module: its file's name with "-" as "_".
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleData reads a module file, uncompressing a .ko.xz with xz (tools/setup.sh installs it).
func moduleData(file string) ([]byte, error) {
	if !strings.HasSuffix(file, ".xz") {
		return os.ReadFile(file)
	}
	var errs bytes.Buffer
	cmd := exec.Command("xz", "-dc", file)
	cmd.Stderr = &errs
	data, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("xz -dc %s: %v: %s", file, err, errs.String())
	}
	return data, nil
}

// moduleDepends returns the modules a module's .modinfo says it depends on ("depends=a,b").
func moduleDepends(data []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
