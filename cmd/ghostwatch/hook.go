package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp/runtimebase"
)

func hookCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "overwrite", Usage: "let the annotation name an existing file, which is replaced"},
		&cli.StringFlag{Name: "output-root", Usage: "profiles may only be written below this directory"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "longest the hook may hold up the container"},
	}
	return &cli.Command{
		Name:  "hook",
		Usage: "OCI hook: prestart starts recording the container, poststop writes its profile (state on stdin)",
		Subcommands: []*cli.Command{
			{Name: "prestart", Flags: flags, Action: hookPrestart, Usage: "start recording (OCI prestart hook)"},
			{Name: "poststop", Flags: flags, Action: hookPoststop, Usage: "write the profile (OCI poststop hook)"},
			{Name: "record", Hidden: true, Flags: append(flags,
				&cli.UintFlag{Name: "pid"}, &cli.StringFlag{Name: "of"}, &cli.StringFlag{Name: "if"}, &cli.StringFlag{Name: "id"},
				&cli.StringFlag{Name: "runtime"}, &cli.BoolFlag{Name: "no-new-privileges"}),
				Action: hookRecord},
		},
	}
}

func hookPrestart(c *cli.Context) error {
	req, ok, err := seccomp.ReadHookState(os.Stdin, c.String("output-root"))
	if err != nil || !ok {
		return err
	}
	if !c.Bool("overwrite") {
		if _, err := os.Lstat(req.Out); err == nil {
			return fmt.Errorf("output %s exists: refusing to overwrite it (the hook's --overwrite allows it)", req.Out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"seccomp", "hook", "record", "--pid", strconv.Itoa(req.State.Pid), "--id", req.State.ID, "--of", req.Out}
	// The profile gets the runtime's start-up, so that the container starts under it.
	runtime, nnp := seccomp.HookRuntime(req.State)
	if _, warn := runtimebase.For(runtime, nnp); warn != "" {
		fmt.Fprintf(c.App.ErrWriter, "ghostwatch: warning: container %s: %s\n", req.State.ID, warn)
	}
	args = append(args, "--runtime", runtime)
	if nnp {
		args = append(args, "--no-new-privileges")
	}
	if req.In != "" {
		args = append(args, "--if", req.In)
	}
	if c.Bool("overwrite") {
		args = append(args, "--overwrite")
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ready.Close()
	cmd := exec.Command(self, args...)
	cmd.Env = os.Environ()
	cmd.ExtraFiles = []*os.File{readyW}                  // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the hook
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return fmt.Errorf("starting the recorder: %w", err)
	}
	readyW.Close()
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(ready).ReadString('\n')
		answer <- strings.TrimSpace(line)
	}()
	select {
	case line := <-answer:
		if line != "ready" {
			cmd.Wait()
			if line == "" {
				line = "the recorder exited before it was ready"
			}
			return errors.New(line)
		}
		cmd.Process.Release()
		return nil
	case <-time.After(c.Duration("timeout")):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("the recorder was not ready within %v: container %s not recorded", c.Duration("timeout"), req.State.ID)
	}
}

// hookRecord is the recorder the prestart hook leaves behind (seccomp.RecordHook); it tells the
// hook on fd 3 when it records, or why it cannot.
func hookRecord(c *cli.Context) error {
	readyPipe := os.NewFile(3, "ready")
	return seccomp.RecordHook(seccomp.HookRecording{Pid: uint32(c.Uint("pid")), ID: c.String("id"),
		Out: c.String("of"), In: c.String("if"), Overwrite: c.Bool("overwrite"),
		Runtime: c.String("runtime"), NoNewPrivileges: c.Bool("no-new-privileges")}, func(err error) {
		if err != nil {
			fmt.Fprintln(readyPipe, err.Error())
		} else {
			fmt.Fprintln(readyPipe, "ready")
		}
		readyPipe.Close()
	})
}

// hookPoststop has the recorder write the profile and reports how that went.
func hookPoststop(c *cli.Context) error {
	req, ok, err := seccomp.ReadHookState(os.Stdin, c.String("output-root"))
	if err != nil || !ok {
		return err
	}
	return seccomp.StopHook(req.State.ID, c.Duration("timeout"))
}
