package orchestratorsync

// ExtraPollers returns the pollers running besides pollLoop's own request.
func (s *Syncer) ExtraPollers() int { return int(s.extraPollers.Load()) }
