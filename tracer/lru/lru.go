// Package lru is a bounded cache that evicts the least recently used entry, and entries older
// than a time to live: the memory of joins and of caches fed by a stream of events must not grow
// with the stream.
package lru

import (
	"container/list"
	"sync"
	"time"
)

// Cache holds at most Max entries. It is safe for concurrent use.
type Cache[K comparable, V any] struct {
	max   int
	ttl   time.Duration // 0: entries do not expire
	now   func() time.Time
	mu    sync.Mutex
	order *list.List // front: most recently used
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key   K
	value V
	added time.Time
}

// New makes a cache of at most size entries (at least 1), each kept at most ttl (0: no limit).
func New[K comparable, V any](size int, ttl time.Duration) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), ttl: ttl, now: time.Now, order: list.New(), items: map[K]*list.Element{}}
}

// Get returns a live entry and marks it used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if c.ttl > 0 && c.now().Sub(e.added) > c.ttl {
		c.remove(el) // expired: kept as long as meant, not forgotten for want of room
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

// Put adds or replaces an entry, evicting the least recently used one when full. It returns how
// many entries were evicted for room (0 or 1), so that a join can count what it forgot.
func (c *Cache[K, V]) Put(k K, v V) (evicted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value = &entry[K, V]{k, v, c.now()}
		c.order.MoveToFront(el)
		return 0
	}
	for c.order.Len() >= c.max {
		c.remove(c.order.Back())
		evicted++
	}
	c.items[k] = c.order.PushFront(&entry[K, V]{k, v, c.now()})
	return evicted
}

// Delete removes an entry.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.remove(el)
	}
}

// Len is the number of entries, expired ones included until they are touched.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *Cache[K, V]) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.items, el.Value.(*entry[K, V]).key)
}
