package lan

import (
	"fmt"
	"reflect"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// StackCounters lists the netstack's non-zero counters, for diagnosis.
func (l *LAN) StackCounters() []string {
	var out []string
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		if v.Kind() == reflect.Ptr {
			if v.IsNil() {
				return
			}
			if c, ok := v.Interface().(*tcpip.StatCounter); ok {
				if n := c.Value(); n > 0 {
					out = append(out, fmt.Sprintf("%s=%d", prefix, n))
				}
				return
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walk(prefix+"."+v.Type().Field(i).Name, v.Field(i))
			}
		}
	}
	walk("", reflect.ValueOf(l.stack.Stats()))
	return out
}
