package lru

import (
	"testing"
	"time"
)

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := New[int, string](2, 0)
	c.Put(1, "a")
	c.Put(2, "b")
	if _, ok := c.Get(1); !ok { // 1 is now the most recently used
		t.Fatal("1 missing")
	}
	if n := c.Put(3, "c"); n != 1 {
		t.Errorf("Put evicted %d, want 1", n)
	}
	if _, ok := c.Get(2); ok {
		t.Error("2 should have been evicted")
	}
	if v, ok := c.Get(1); !ok || v != "a" {
		t.Errorf("1 = %q, %v", v, ok)
	}
	if c.Len() != 2 {
		t.Errorf("len %d, want 2", c.Len())
	}
	if n := c.Put(1, "z"); n != 0 {
		t.Errorf("replacing evicted %d", n)
	}
	if v, _ := c.Get(1); v != "z" {
		t.Errorf("replaced value = %q", v)
	}
	c.Delete(1)
	if _, ok := c.Get(1); ok || c.Len() != 1 {
		t.Error("delete left the entry")
	}
}

func TestExpires(t *testing.T) {
	c := New[int, int](10, time.Minute)
	at := time.Now()
	c.now = func() time.Time { return at }
	c.Put(1, 1)
	at = at.Add(time.Minute)
	if _, ok := c.Get(1); !ok {
		t.Fatal("an entry as old as the ttl was dropped")
	}
	at = at.Add(time.Nanosecond)
	if _, ok := c.Get(1); ok {
		t.Error("an entry older than the ttl was returned")
	}
	if c.Len() != 0 {
		t.Errorf("len %d", c.Len())
	}
}
