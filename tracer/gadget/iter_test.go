package gadget_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	gen "github.com/ghostwatch/ghostwatch/gen/netns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// ReadIter on real iterators: one that writes records (netns's holders_tasks, which lists this
// process), and one run for its work in the kernel that writes none (netns's census).
func TestReadIter(t *testing.T) {
	testutil.RequirePrivileged(t)
	spec, err := gen.LoadNetns()
	if err != nil {
		t.Fatal(err)
	}
	set, err := attach.Load(spec, []attach.Hook{
		{Name: "census", Candidates: [][]string{{gen.NetnsProgCensus}}},
		{Name: "members", Candidates: [][]string{{gen.NetnsProgHoldersTasks}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	recs, err := gadget.ReadIter[gen.NetnsHolderRecord](set, gen.NetnsProgHoldersTasks)
	if err != nil {
		t.Fatal(err)
	}
	self := slices.IndexFunc(recs, func(r gen.NetnsHolderRecord) bool { return int(r.Pid) == os.Getpid() })
	if self < 0 {
		t.Fatalf("%d records, none of this process (pid %d)", len(recs), os.Getpid())
	}
	if r := recs[self]; gen.NetnsHolderKind(r.Kind) != gen.NetnsHolderKindHOLDER_MEMBER || r.Netns != testutil.NSInode(t, os.Getpid(), "net") {
		t.Errorf("this process's record %+v: want a member of netns %d", r, testutil.NSInode(t, os.Getpid(), "net"))
	}
	if recs, err := gadget.ReadIter[struct{}](set, gen.NetnsProgCensus); err != nil || len(recs) != 0 {
		t.Errorf("census: %d records, %v; want none", len(recs), err)
	}
	if _, err := gadget.ReadIter[struct{}](set, gen.NetnsProgHoldersTasks); err == nil || !strings.Contains(err.Error(), "should write none") {
		t.Errorf("records of an iterator read as one that writes none: %v", err)
	}
	if _, err := gadget.ReadIter[gen.NetnsHolderRecord](set, gen.NetnsProgHoldersFiles); err == nil || !strings.Contains(err.Error(), "not attached") {
		t.Errorf("an iterator not attached: %v", err)
	}
}
