from experiments.baseline.run import main

main()
