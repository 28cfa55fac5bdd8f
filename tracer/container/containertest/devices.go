package containertest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// DenyAllDevices rewrites the cgroup v1 device rules of process pid's cgroup as some runc versions
// do on `runc update`: deny all, wait, then allow each rule it had again, from a host shell.
// Returns how long the shell took: the window lies within it.
func DenyAllDevices(t testing.TB, pid int, wait time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	script := `cg=/sys/fs/cgroup/devices$(grep ':devices:' /proc/$PID/cgroup | cut -d: -f3)
saved=$(cat $cg/devices.list); echo a > $cg/devices.deny; sleep ` + strconv.FormatFloat(wait.Seconds(), 'f', -1, 64) + `
echo "$saved" | while read -r r; do echo "$r" > $cg/devices.allow; done`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "PID="+strconv.Itoa(pid))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("denying all devices: %v: %s", err, out)
	}
	return time.Since(start)
}
