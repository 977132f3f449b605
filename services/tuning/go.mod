module github.com/sluice-ml/sluice/services/tuning

go 1.26.8

require gonum.org/v1/gonum v0.16.0
