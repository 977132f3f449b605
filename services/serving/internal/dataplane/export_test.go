package dataplane

// HoldInflightBytes reserves n bytes of the in-flight budget until the returned func is called, as
// requests in flight would (tests only).
func (s *Server) HoldInflightBytes(n int64) func() {
	if !s.budget.acquire(n) {
		panic("dataplane: HoldInflightBytes: budget exhausted")
	}
	return func() { s.budget.release(n) }
}
