module kubemr.local/pause

go 1.21
