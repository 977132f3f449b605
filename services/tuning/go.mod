module github.com/sluice-ml/sluice/services/tuning

go 1.26.8
