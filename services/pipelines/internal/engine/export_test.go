package engine

import "context"

// PVCStep runs a CreatePVC or DeletePVC task's work (the part of RunStep that talks to the runtime)
// for tests.
func (a *Activities) PVCStep(ctx context.Context, in StepInput, op string) (StepResult, error) {
	return a.pvcStep(ctx, in, op)
}
