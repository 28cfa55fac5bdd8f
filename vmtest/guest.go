package vmtest

// Spec tells the guest init what to run; it is stored in the initramfs as SpecPath.
type Spec struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// Modules are kernel modules (by guest path) to load first, in order.
	Modules []Module `json:"modules"`
}

// SpecPath is where the guest init finds its Spec.
const SpecPath = "/vmtest.json"

// StatusMarker starts the line on which the guest reports the exit status of what it ran. Without
// it the run failed, whatever else the guest printed.
const StatusMarker = "vmtest-exit-status:"
