from experiments.soft_sharing.run import main

main()
