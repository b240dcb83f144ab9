package replicas

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coPartitioned is the group balancer of a join's replicas: partition p
// of every input topic goes to one member, as the range balancer does,
// but cooperatively and stickily, as cooperative-sticky does. A member
// keeps the partition numbers it owns up to its fair share; only what
// must move moves (revoked first, assigned in the next round,
// kgo.BalancePlan.AdjustCooperative), so a join replica that restarts
// or joins does not make the others give up their pending joins (which
// eager range balancing would, replaying them all).
type coPartitioned struct{}

// coPartitionedProtocol is the balancer's name in the group protocol:
// every member of a join's group speaks it.
const coPartitionedProtocol = "sluice-copartitioned"

func (coPartitioned) ProtocolName() string { return coPartitionedProtocol }
func (coPartitioned) IsCooperative() bool  { return true }

func (coPartitioned) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for topic, ps := range current {
		o := kmsg.NewConsumerMemberMetadataOwnedPartition()
		o.Topic = topic
		o.Partitions = slices.Sorted(slices.Values(ps))
		meta.OwnedPartitions = append(meta.OwnedPartitions, o)
	}
	slices.SortFunc(meta.OwnedPartitions, func(a, b kmsg.ConsumerMemberMetadataOwnedPartition) int { return strings.Compare(a.Topic, b.Topic) })
	return meta.AppendTo(nil)
}

func (coPartitioned) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (c coPartitioned) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(c, members)
	if err != nil {
		return nil, nil, err
	}
	return b, b.MemberTopics(), nil
}

// Balance assigns partition numbers, each with every topic's partition of
// that number, to the members in their order: first to the member that
// owns it now (the highest generation's claim), within its share, then
// the rest to the members with the fewest.
func (coPartitioned) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := b.Members()
	plan := b.NewPlan()
	if len(members) == 0 {
		return plan
	}
	var n int32
	for _, c := range topics {
		n = max(n, c)
	}
	type claim struct {
		member int
		gen    int32
	}
	owner := map[int32]claim{}
	b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		i := slices.IndexFunc(members, func(x kmsg.JoinGroupResponseMember) bool { return x.MemberID == m.MemberID })
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				if c, ok := owner[p]; !ok || meta.Generation > c.gen {
					owner[p] = claim{i, meta.Generation}
				}
			}
		}
	})
	floor, extra := int(n)/len(members), int(n)%len(members)
	count := make([]int, len(members))
	assigned := make([]int, n)
	for p := range n {
		assigned[p] = -1
		c, ok := owner[p]
		if !ok {
			continue
		}
		switch {
		case count[c.member] < floor:
		case count[c.member] == floor && extra > 0:
			extra--
		default:
			continue
		}
		assigned[p] = c.member
		count[c.member]++
	}
	for p := range n {
		if assigned[p] >= 0 {
			continue
		}
		least := 0
		for i := range members {
			if count[i] < count[least] {
				least = i
			}
		}
		assigned[p] = least
		count[least]++
	}
	for p, i := range assigned {
		for topic, c := range topics {
			if int32(p) < c {
				plan.AddPartition(&members[i], topic, int32(p))
			}
		}
	}
	plan.AdjustCooperative(b)
	return plan
}
