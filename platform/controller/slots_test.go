package controller

import "testing"

// A replica slot is the lowest one of its group not held by a live
// replica: a replica started while another drains, or a new version's
// beside the old one's, gets an ID of its own; a freed slot is reused.
func TestSlots(t *testing.T) {
	t.Parallel()
	c := &Controller{slots: map[string]map[int]bool{}}
	for want := range 3 {
		if got := c.takeSlot("g"); got != want {
			t.Fatalf("slot %d, want %d", got, want)
		}
	}
	if got := c.takeSlot("other"); got != 0 {
		t.Fatalf("another group's first slot %d, want 0", got)
	}
	c.freeSlot("g", 1)
	if got := c.takeSlot("g"); got != 1 {
		t.Fatalf("after freeing 1: slot %d, want 1", got)
	}
	if got := c.takeSlot("g"); got != 3 {
		t.Fatalf("slot %d, want 3", got)
	}
	for s := range 4 {
		c.freeSlot("g", s)
	}
	c.freeSlot("other", 0)
	if len(c.slots) != 0 {
		t.Fatalf("slots left after freeing all: %v", c.slots)
	}
	if got := InstanceID("shop", "Cart", "2"); got != "shop.Cart.2" {
		t.Fatalf("InstanceID = %q", got)
	}
}
